package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A Process is one component of the stack, run as a child in its own process
// group with its output in a log file.
type Process struct {
	Name    string
	LogPath string

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// StartProcess runs bin with args and env (a complete environment: the child
// inherits nothing from the test, so a developer's KUBECONFIG cannot leak
// in). Output goes to logPath.
//
// The child gets its own process group, so Stop reaches anything it forks,
// and Pdeathsig, so the kernel kills it if the test binary dies without
// running its clean-up (a panic, a timeout, SIGKILL).
func StartProcess(name, logPath string, env []string, bin string, args ...string) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open log for %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL after grace, and
// waits until the child is reaped. It is safe to call more than once.
func (p *Process) Stop(grace time.Duration) {
	pgid := -p.cmd.Process.Pid
	select {
	case <-p.done:
		// The leader is gone; its group may still hold forked children.
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		return
	default:
	}
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.done
	}
	_ = syscall.Kill(pgid, syscall.SIGKILL)
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string {
	return tailFile(p.LogPath, n)
}

func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	// Logs can be large after a benchmark; the tail is in the last 64 KiB.
	const window = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > window {
		_, _ = f.Seek(st.Size()-window, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// PeakRSS returns the process's peak resident set size in bytes (VmHWM).
func (p *Process) PeakRSS() (int64, error) {
	return procStatusKB(p.Pid(), "VmHWM")
}

// ResetPeakRSS makes the kernel forget the peak so far (clear_refs 5), so
// a benchmark measures only its own work.
func (p *Process) ResetPeakRSS() error {
	path := fmt.Sprintf("/proc/%d/clear_refs", p.Pid())
	if err := os.WriteFile(path, []byte("5"), 0o200); err != nil {
		return fmt.Errorf("cannot reset peak RSS of %s: %w", p.Name, err)
	}
	return nil
}

func procStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("cannot read status of process %d: %w", pid, err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := strings.Cut(string(line), ":")
		if !ok || k != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cannot parse %s of process %d: %w", field, pid, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("cannot find %s in the status of process %d", field, pid)
}

// WaitTCP waits until addr accepts TCP connections. It fails early if one
// of watch exits.
func WaitTCP(ctx context.Context, addr string, timeout time.Duration, watch ...*Process) error {
	err := poll(ctx, timeout, func(ctx context.Context) (bool, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return false, err
		}
		_ = c.Close()
		return true, nil
	}, watch...)
	if err != nil {
		return fmt.Errorf("nothing listens on %s: %w", addr, err)
	}
	return nil
}

// FreePort asks the kernel for a free loopback port. Another process could
// take it before the component binds it; on a test machine that is rare,
// and the component then fails to start with a clear "address in use".
func FreePort() (int, error) {
	ps, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return ps[0], nil
}

// freePorts returns n distinct free ports.
func freePorts(n int) ([]int, error) {
	// Hold every listener until all are chosen so the kernel cannot hand the
	// same port out twice.
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("cannot find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
