package main

// The harness runs the real nix-gitops binary as a subprocess against real
// git repositories (testflake: a work tree pushing to a bare repo, served
// over file:// or by git http-backend on loopback) and real nix (Debian's
// nix-bin, test nix.conf in NIX_CONFIG). The fakes, and the only ones:
//   - the stand-in toplevel of internal/testflake (nixpkgs cannot be built
//     offline), whose switch-to-configuration records its calls;
//   - no systemd as PID 1 here, so the gate's systemd checks report
//     "skipped: no systemd" (the gate's systemd logic is tested against a
//     fake of its Systemd interface in internal/agent/health).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/homelab-infra/homelab-infra/internal/agent"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// agentBin builds the real binary once per test run.
func agentBin(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nix-gitops-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "nix-gitops")
		// Built as nix/pkgs/default.nix and the VM image build it: static
		// (no cgo), so the tests and the benchmark run the binary a
		// machine runs, not one linked against this host's libc.
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// lab is one machine under test: a flake repo, a state folder, a profile.
type lab struct {
	t       testing.TB
	dir     string
	repo    *testflake.Repo
	rec     string // where the stand-in switch-to-configuration records
	cfgPath string
	cfg     map[string]any
	env     []string
}

func newLab(t testing.TB) *lab {
	t.Helper()
	testenv.Real(t)
	testenv.LookPath(t, "git")
	testenv.LookPath(t, "nix")
	testenv.LookPath(t, "nix-env")
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec")
	repo, err := testflake.New(filepath.Join(dir, "git"), testflake.Options{RecordDir: rec})
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, dir: dir, repo: repo, rec: rec, cfgPath: filepath.Join(dir, "config.json")}
	l.cfg = map[string]any{
		"flake":        repo.FlakeRef(repo.URL(), "h1"),
		"stateDir":     filepath.Join(dir, "state"),
		"profile":      filepath.Join(dir, "profiles", "system"),
		"bootedSystem": filepath.Join(dir, "booted-system"),
		// The stand-in switch keeps rec/current-system, as NixOS's
		// activation keeps /run/current-system.
		"currentSystem": filepath.Join(rec, "current-system"),
		"retry":         map[string]any{"attempts": 2, "initial": "100ms", "max": "200ms"},
		"health":        map[string]any{"settle": "2s"},
		"metrics":       map[string]any{"textfile": filepath.Join(dir, "metrics", "nix-gitops.prom")},
		"log":           map[string]any{"level": "debug"},
	}
	l.env = append(os.Environ(), "NIX_CONFIG="+testflake.NixConf)
	return l
}

// commit commits one version of host h1.
func (l *lab) commit(s testflake.System) string {
	l.t.Helper()
	return l.commitOpts(s, testflake.CommitOptions{})
}

func (l *lab) commitOpts(s testflake.System, co testflake.CommitOptions) string {
	l.t.Helper()
	sha, err := l.repo.Commit(testflake.Spec{Hosts: map[string]testflake.System{"h1": s}}, co)
	if err != nil {
		l.t.Fatal(err)
	}
	return sha
}

func (l *lab) writeConfig() {
	l.t.Helper()
	b, err := json.MarshalIndent(l.cfg, "", "  ")
	if err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(l.cfgPath, b, 0o644); err != nil {
		l.t.Fatal(err)
	}
}

type result struct {
	code           int
	stdout, stderr string
}

// cmd prepares the agent with the lab's config.
func (l *lab) cmd(args ...string) *exec.Cmd {
	l.t.Helper()
	l.writeConfig()
	cmd := exec.Command(agentBin(l.t), append(append([]string{}, args...), "--config", l.cfgPath)...)
	cmd.Env = l.env
	return cmd
}

// start starts the agent in the background; its stderr collects in the
// returned buffer (read it only after Wait).
func (l *lab) start(args ...string) (*exec.Cmd, *bytes.Buffer) {
	l.t.Helper()
	cmd := l.cmd(args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	return cmd, &stderr
}

// run runs the agent to completion.
func (l *lab) run(args ...string) result {
	l.t.Helper()
	cmd := l.cmd(args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := testenv.ExitCode(l.t, cmd.Run())
	l.t.Logf("nix-gitops %s → %d\n%s", strings.Join(args, " "), code, stderr.String())
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// apply runs `apply` and checks the exit code.
func (l *lab) apply(want int, args ...string) result {
	l.t.Helper()
	r := l.run(append([]string{"apply"}, args...)...)
	if r.code != want {
		l.t.Fatalf("apply %v: exit %d, want %d\n%s", args, r.code, want, r.stderr)
	}
	return r
}

func (l *lab) status() agent.Status {
	l.t.Helper()
	r := l.run("status", "--json")
	if r.code != 0 {
		l.t.Fatalf("status --json: exit %d\n%s", r.code, r.stderr)
	}
	var s agent.Status
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		l.t.Fatalf("cannot parse status --json: %v\n%s", err, r.stdout)
	}
	return s
}

// metrics parses the textfile: name{labels} → value.
func (l *lab) metrics() map[string]float64 {
	l.t.Helper()
	f, err := os.Open(filepath.Join(l.dir, "metrics", "nix-gitops.prom"))
	if err != nil {
		l.t.Fatal(err)
	}
	defer f.Close()
	return parseMetrics(l.t, f)
}

func parseMetrics(t testing.TB, r interface{ Read([]byte) (int, error) }) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("cannot parse metrics: %v", err)
	}
	out := map[string]float64{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			key := name
			if len(ls) > 0 {
				key += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// calls returns the recorded switch-to-configuration calls.
func (l *lab) calls() []testflake.Call {
	l.t.Helper()
	c, err := testflake.Calls(l.rec)
	if err != nil {
		l.t.Fatal(err)
	}
	return c
}

// profileTarget is the toplevel the lab's system profile points to.
func (l *lab) profileTarget() string {
	l.t.Helper()
	p, err := filepath.EvalSymlinks(filepath.Join(l.dir, "profiles", "system"))
	if err != nil {
		return ""
	}
	return p
}

// ageBadCommits moves the bad commits' failure and retry times d into the
// past, as if that much time had gone by.
func (l *lab) ageBadCommits(d time.Duration) {
	l.t.Helper()
	p := filepath.Join(l.dir, "state", "state.json")
	b, err := os.ReadFile(p)
	if err != nil {
		l.t.Fatal(err)
	}
	var st state.State
	if err := json.Unmarshal(b, &st); err != nil {
		l.t.Fatal(err)
	}
	for i := range st.BadCommits {
		st.BadCommits[i].Time = st.BadCommits[i].Time.Add(-d - time.Second)
		st.BadCommits[i].RetryAfter = st.BadCommits[i].RetryAfter.Add(-d - time.Second)
	}
	if err := state.Save(filepath.Dir(p), &st); err != nil {
		l.t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logValue returns the value of key in the last log line with msg.
func logValue(stderr, msg, key string) string {
	val := ""
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.Contains(line, "msg=\""+msg+"\"") && !strings.Contains(line, "msg="+msg) {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, key+"="); ok {
				val = strings.Trim(v, `"`)
			}
		}
	}
	return val
}
