package main

// `make bench` figures for the agent: the no-op tick (timer mode: one
// process per tick; daemon mode: one in-process ref lookup per tick)
// against a full rebuild of the same stand-in flake, and against an
// autoUpgrade-style tick (nix build --refresh, then switch), with the comin
// anchors from issue 6 side by side. Figures are printed, never asserted.
// Fake: the stand-in toplevel (testflake); git (http-backend), nix and
// the agent binary are real.

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// countingListener counts the bytes the server reads (what the agent
// sent) and writes (what the agent received), headers included.
type countingListener struct {
	net.Listener
	in, out atomic.Int64 // from the agent's side: in = received
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &serverConn{Conn: c, l: l}, nil
}

type serverConn struct {
	net.Conn
	l *countingListener
}

func (c *serverConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.l.out.Add(int64(n))
	return n, err
}

func (c *serverConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.l.in.Add(int64(n))
	return n, err
}

// syncBuffer is a bytes.Buffer safe to read while a child writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// figures of one kind of tick.
type figures struct {
	wall, cpu         time.Duration // per tick
	procs             float64       // processes started per tick (the agent itself included in one-shot)
	bytesIn, bytesOut float64
	rssMB             float64
	note              string
}

// oneShot runs the binary once and returns wall, CPU (its own and its
// waited-for children's) and max RSS.
func oneShot(b *testing.B, l *lab, want int, args ...string) (time.Duration, time.Duration, float64, string) {
	cmd := l.cmd(append([]string{"apply"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	if code := testenv.ExitCode(b, err); code != want {
		b.Fatalf("apply: exit %d, want %d\n%s", code, want, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return wall, cpu, float64(ru.Maxrss) / 1024, stderr.String()
}

// execves counts the processes a command starts (itself included), by
// running it under strace.
func execves(b *testing.B, cmd *exec.Cmd) int {
	st := testenv.LookPath(b, "strace")
	trace := filepath.Join(b.TempDir(), "trace")
	c := exec.Command(st, append([]string{"-f", "-qq", "-e", "trace=execve", "-e", "status=successful", "-o", trace}, cmd.Args...)...)
	c.Env = cmd.Env
	_ = c.Run()
	out, err := os.ReadFile(trace)
	if err != nil {
		b.Fatal(err)
	}
	return strings.Count(string(out), "execve(")
}

func procStat(pid int) (cpu time.Duration, rssMB float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64) // utime, clock ticks (field 14)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			rssMB = kb / 1024
		}
	}
	return time.Duration(ut+stt) * 10 * time.Millisecond, rssMB // USER_HZ = 100
}

func BenchmarkAgent(b *testing.B) {
	l := newLab(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	handler := &testflake.Server{Root: filepath.Dir(l.repo.Bare)}
	srv := &http.Server{Handler: handler}
	go srv.Serve(cl)
	defer srv.Close()
	l.cfg["flake"] = l.repo.FlakeRef("http://"+ln.Addr().String()+"/remote.git", "h1")
	l.cfg["log"] = map[string]any{"level": "info"}
	version := 1
	l.commit(testflake.System{Version: "1"})
	l.apply(0)
	res := map[string]*figures{}

	b.Run("NoopTickTimerMode", func(b *testing.B) {
		f := &figures{}
		in0, out0 := cl.in.Load(), cl.out.Load()
		var wall, cpu time.Duration
		for i := 0; i < b.N; i++ {
			w, c, rss, _ := oneShot(b, l, 10)
			wall += w
			cpu += c
			f.rssMB = max(f.rssMB, rss)
		}
		f.wall, f.cpu = wall/time.Duration(b.N), cpu/time.Duration(b.N)
		f.bytesIn = float64(cl.in.Load()-in0) / float64(b.N)
		f.bytesOut = float64(cl.out.Load()-out0) / float64(b.N)
		f.procs = float64(execves(b, l.cmd("apply")))
		f.note = "max RSS while running; none between ticks"
		res["noop-timer"] = f
		b.ReportMetric(float64(f.cpu.Microseconds())/1000, "cpu-ms/op")
		b.ReportMetric(f.procs, "procs/op")
		b.ReportMetric(f.bytesIn, "B-in/op")
		b.ReportMetric(f.bytesOut, "B-out/op")
	})

	b.Run("NoopTickDaemonMode", func(b *testing.B) {
		// One daemon run of ~3 s polling every 20 ms, whatever b.N is. Ticks
		// are counted at the server (one request per no-op tick);
		// processes from the agent's own count in its debug log.
		l.cfg["poll"] = map[string]any{"interval": "20ms", "jitter": "0s"}
		l.cfg["metrics"] = map[string]any{"listen": "off"}
		l.cfg["log"] = map[string]any{"level": "debug"}
		defer func() {
			delete(l.cfg, "poll")
			delete(l.cfg, "metrics")
			l.cfg["log"] = map[string]any{"level": "info"}
		}()
		cmd := l.cmd("run")
		var stderr syncBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer cmd.Process.Kill()
		time.Sleep(time.Second) // warm up: first tick, connection set up
		cpu0, _ := procStat(cmd.Process.Pid)
		in0, out0, req0 := cl.in.Load(), cl.out.Load(), handler.Requests.Load()
		procs0 := logValue(stderr.String(), "run finished", "processes")
		t0 := time.Now()
		time.Sleep(3 * time.Second)
		cpu1, rss := procStat(cmd.Process.Pid)
		ticks := handler.Requests.Load() - req0
		in1, out1 := cl.in.Load(), cl.out.Load()
		elapsed := time.Since(t0)
		procs1 := logValue(stderr.String(), "run finished", "processes")
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if ticks == 0 {
			b.Fatalf("no ticks:\n%s", stderr.String())
		}
		p0, _ := strconv.Atoi(procs0)
		p1, _ := strconv.Atoi(procs1)
		f := &figures{rssMB: rss, procs: float64(p1-p0) / float64(ticks)}
		f.cpu = (cpu1 - cpu0) / time.Duration(ticks)
		f.wall = elapsed/time.Duration(ticks) - 20*time.Millisecond // minus the interval
		f.bytesIn = float64(in1-in0) / float64(ticks)
		f.bytesOut = float64(out1-out0) / float64(ticks)
		f.note = fmt.Sprintf("%d ticks in %s; RSS of the running daemon", ticks, elapsed.Round(time.Millisecond))
		res["noop-daemon"] = f
		b.ReportMetric(float64(f.cpu.Microseconds())/1000, "cpu-ms/tick")
		b.ReportMetric(f.rssMB, "RSS-MB")
		b.ReportMetric(f.bytesIn, "B-in/tick")
		b.ReportMetric(f.bytesOut, "B-out/tick")
	})

	b.Run("FullRebuild", func(b *testing.B) {
		f := &figures{}
		var wall, cpu, f2s time.Duration
		var stages string
		for i := 0; i < b.N; i++ {
			version++
			l.commit(testflake.System{Version: strconv.Itoa(version)})
			w, c, rss, _ := oneShot(b, l, 0)
			wall += w
			cpu += c
			f.rssMB = max(f.rssMB, rss)
			s := l.status()
			d := s.Durations
			f2s += time.Duration((d["fetch"] + d["eval"] + d["build"] + d["profile"]) * float64(time.Second))
			stages = fmt.Sprintf("fetch %.0f, eval %.0f, build %.0f, profile %.0f, switch %.0f, health %.0f ms",
				d["fetch"]*1000, d["eval"]*1000, d["build"]*1000, d["profile"]*1000, d["switch"]*1000, d["health"]*1000)
		}
		f.wall, f.cpu = wall/time.Duration(b.N), cpu/time.Duration(b.N)
		version++
		l.commit(testflake.System{Version: strconv.Itoa(version)})
		f.procs = float64(execves(b, l.cmd("apply")))
		f.note = fmt.Sprintf("fetch→switch %s (last: %s)", (f2s / time.Duration(b.N)).Round(time.Millisecond), stages)
		res["rebuild"] = f
		b.ReportMetric(float64(f.cpu.Microseconds())/1000, "cpu-ms/op")
		b.ReportMetric(f.procs, "procs/op")
	})

	b.Run("AutoUpgradeStyleTick", func(b *testing.B) {
		// What system.autoUpgrade does every tick, even when nothing changed:
		// nix build --refresh of the remote flake, then set the profile and switch.
		url := "git+http://" + ln.Addr().String() + "/remote.git?ref=main#nixosConfigurations.h1.config.system.build.toplevel"
		script := fmt.Sprintf(`set -e
out=$(nix build --refresh --no-link --json '%s' | sed 's/.*"out":"\([^"]*\)".*/\1/')
nix-env -p %s --set "$out"
"$out/bin/switch-to-configuration" switch`, url, filepath.Join(l.dir, "au", "system"))
		_ = os.MkdirAll(filepath.Join(l.dir, "au"), 0o755)
		mk := func() *exec.Cmd {
			c := exec.Command("/bin/sh", "-c", script)
			c.Env = append(l.env, "XDG_CACHE_HOME="+filepath.Join(l.dir, "au-cache"))
			return c
		}
		f := &figures{}
		var wall, cpu time.Duration
		for i := 0; i < b.N; i++ {
			c := mk()
			t0 := time.Now()
			if out, err := c.CombinedOutput(); err != nil {
				b.Fatalf("autoUpgrade-style tick: %v\n%s", err, out)
			}
			wall += time.Since(t0)
			ru := c.ProcessState.SysUsage().(*syscall.Rusage)
			cpu += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		f.wall, f.cpu = wall/time.Duration(b.N), cpu/time.Duration(b.N)
		f.procs = float64(execves(b, mk()) - 1) // minus the /bin/sh wrapper
		f.note = "evaluates and switches every tick"
		res["autoupgrade"] = f
		b.ReportMetric(float64(f.cpu.Microseconds())/1000, "cpu-ms/op")
		b.ReportMetric(f.procs, "procs/op")
	})

	nt, nd, rb, au := res["noop-timer"], res["noop-daemon"], res["rebuild"], res["autoupgrade"]
	if nt == nil || nd == nil || rb == nil || au == nil {
		return // a -bench filter ran only some
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
	var t strings.Builder
	fmt.Fprintf(&t, "\nnix-gitops no-op tick vs full rebuild (stand-in flake, git http-backend on loopback)\n")
	fmt.Fprintf(&t, "%-26s %-12s %-12s %-10s %-16s %-10s %s\n", "", "wall/tick", "CPU/tick", "procs", "bytes in/out", "RSS", "notes")
	row := func(name string, f *figures, rss string) {
		bytes := "-" // not measured for builds
		if f.bytesIn+f.bytesOut > 0 {
			bytes = fmt.Sprintf("%.0f / %.0f", f.bytesIn, f.bytesOut)
		}
		fmt.Fprintf(&t, "%-26s %-12s %-12s %-10.2f %-16s %-10s %s\n", name, ms(f.wall), ms(f.cpu), f.procs, bytes, rss, f.note)
	}
	row("no-op, daemon (run)", nd, fmt.Sprintf("%.1f MB", nd.rssMB))
	row("no-op, timer (apply)", nt, fmt.Sprintf("%.1f MB", nt.rssMB))
	row("full rebuild (apply)", rb, fmt.Sprintf("%.1f MB", rb.rssMB))
	row("autoUpgrade-style tick", au, "-")
	fmt.Fprintf(&t, "%-26s %-12s %-12s %-10s %-16s %-10s %s\n", "comin anchor (daemon)", "-", "~2 ms", "0", "~610 / ~140", "21-25 MB", "fetch→switch 0.24 s")
	fmt.Fprintf(&t, "%-26s %-12s %-12s %-10s %-16s %-10s %s\n", "autoUpgrade anchor", "~63 ms", "-", "7", "-", "-", "real NixOS eval 10-30 s")
	fmt.Fprintf(&t, "ratio full rebuild / no-op: wall %.0fx (daemon), %.1fx (timer); CPU %.0fx (daemon), %.1fx (timer)\n",
		float64(rb.wall)/float64(nd.wall), float64(rb.wall)/float64(nt.wall), float64(rb.cpu)/float64(max(nd.cpu, time.Microsecond)), float64(rb.cpu)/float64(nt.cpu))
	fmt.Print(t.String())
}
