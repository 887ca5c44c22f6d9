package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/agent/state"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// rawState reads state.json directly (status would work too; this also
// proves the file is whole while a run is in flight).
func (l *lab) rawState() *state.State {
	l.t.Helper()
	st, err := state.Load(filepath.Join(l.dir, "state"))
	if err != nil {
		l.t.Fatalf("state.json unreadable: %v", err)
	}
	return st
}

// TestConcurrentApplies: two applies started together never overlap: the
// second waits for the lock and then finds the machine up to date; one
// switch happens. With --no-wait the second exits 75 with a clear message
// naming the holder. Fake: the stand-in toplevel (its build sleeps 2 s to
// hold the first run inside the lock).
func TestConcurrentApplies(t *testing.T) {
	l := newLab(t)
	c1 := l.commit(testflake.System{Version: "1", BuildSleep: 2})

	type done struct {
		code   int
		stderr string
	}
	wait := func(cmd *exec.Cmd, stderr *bytes.Buffer) done {
		return done{testenv.ExitCode(t, cmd.Wait()), stderr.String()}
	}

	a, aErr := l.start("apply")
	waitFor(t, "the first run to hold the lock and build", 20*time.Second, func() bool {
		st := l.rawState()
		return st.InProgress != nil && st.InProgress.Stage == "build"
	})
	busy := l.run("apply", "--no-wait")
	if busy.code != 75 || !strings.Contains(busy.stderr, "another nix-gitops run holds the lock") || !strings.Contains(busy.stderr, "held by pid "+itoa(a.Process.Pid)) {
		t.Errorf("apply --no-wait while another run holds the lock: exit %d, want 75 naming pid %d:\n%s", busy.code, a.Process.Pid, busy.stderr)
	}
	b, bErr := l.start("apply")
	ra, rb := wait(a, aErr), wait(b, bErr)
	codes := []int{ra.code, rb.code}
	if diff := cmp.Diff([]int{0, 10}, codes); diff != "" {
		t.Errorf("exit codes of the two runs: -want, +got:\n%s\nfirst:\n%s\nsecond:\n%s", diff, ra.stderr, rb.stderr)
	}
	s := l.status()
	want := testflake.Succeeded("switch", s.Applied.StorePath)
	if diff := cmp.Diff(want, l.calls()); diff != "" || s.Applied.Commit != c1 {
		t.Errorf("one switch expected: -want, +got:\n%s", diff)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// killDuring starts an apply, waits for cond, and kills it with SIGKILL.
func (l *lab) killDuring(what string, cond func() bool) {
	l.t.Helper()
	cmd, stderr := l.start("apply")
	waitFor(l.t, what, 30*time.Second, cond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		l.t.Fatal(err)
	}
	_ = cmd.Wait()
	l.t.Logf("killed during %s:\n%s", what, stderr.String())
}

// children reports whether any process still runs a command line
// containing s (a leftover build or switch after the kill).
func children(s string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), s) {
			return true
		}
	}
	return false
}

// descendants lists the processes under pid whose command line contains s.
// Only the agent's own children count: other processes on this machine are
// none of the test's business.
func descendants(pid int, s string) []int {
	parent := map[int]int{}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		st := string(b)
		i := strings.LastIndexByte(st, ')')
		f := strings.Fields(st[i+1:])
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if len(f) > 1 {
			parent[n], _ = strconv.Atoi(f[1])
		}
	}
	var out []int
	for n := range parent {
		under := false
		for q := parent[n]; q > 1 && !under; q = parent[q] {
			under = q == pid
		}
		if !under {
			continue
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", n)); err == nil && strings.Contains(string(b), s) {
			out = append(out, n)
		}
	}
	return out
}

// nixBuildOf is what the cmdline of the lab's build (nix-store --realise
// DRV --add-root STATE/candidate) contains.
func nixBuildOf(l *lab) string {
	return "--add-root\x00" + filepath.Join(l.dir, "state", "candidate")
}

// TestKillDuringBuild: kill -9 of the agent while nix builds. The state
// file stays readable and records the interrupted build; the profile never
// moved; the next run starts over and converges. Fake: the stand-in
// toplevel (its build sleeps, so the kill lands inside it).
func TestKillDuringBuild(t *testing.T) {
	l := newLab(t)
	l.commit(testflake.System{Version: "1"})
	l.apply(0)
	before := l.status()
	c2 := l.commit(testflake.System{Version: "2", BuildSleep: 3})
	l.killDuring("the build", func() bool {
		st := l.rawState()
		return st.InProgress != nil && st.InProgress.Stage == "build" && children(nixBuildOf(l))
	})
	st := l.rawState()
	if st.InProgress == nil || st.InProgress.Stage != "build" || st.InProgress.Commit != c2 {
		t.Fatalf("after kill -9 during build, inProgress = %+v", st.InProgress)
	}
	if l.profileTarget() != before.Applied.StorePath {
		t.Fatalf("the profile moved during the build")
	}
	waitFor(t, "the killed build's processes to go away", 10*time.Second, func() bool { return !children(nixBuildOf(l)) })

	r := l.apply(0)
	if !strings.Contains(r.stderr, "interrupted before it touched the system") {
		t.Errorf("the recovering run did not say what it recovered:\n%s", r.stderr)
	}
	s := l.status()
	if s.Applied.Commit != c2 || s.InProgress != nil || l.profileTarget() != s.Applied.StorePath || testflake.Current(l.rec) != s.Applied.StorePath {
		t.Errorf("after recovery: applied %+v, inProgress %+v, profile %q, current %q", s.Applied, s.InProgress, l.profileTarget(), testflake.Current(l.rec))
	}
}

// TestKillDuringSwitch: kill -9 of the agent while switch-to-configuration
// runs (the profile already points at the new generation, the system is
// half-switched). The switch dies with the agent; the next run re-activates
// the recorded previous generation, then applies the commit again (an
// interruption is not the commit's fault) and ends consistent: state,
// profile and the active system agree. Fake: the stand-in toplevel (its
// switch sleeps, so the kill lands inside it).
func TestKillDuringSwitch(t *testing.T) {
	l := newLab(t)
	l.commit(testflake.System{Version: "1"})
	l.apply(0)
	out1 := l.status().Applied.StorePath
	c2 := l.commit(testflake.System{Version: "2", SwitchSleep: 2})
	l.killDuring("the switch", func() bool {
		c := l.calls()
		return len(c) == 3 && c[2].Result == "start"
	})
	st := l.rawState()
	if st.InProgress == nil || st.InProgress.Stage != "switch" || st.InProgress.Previous == nil || st.InProgress.Previous.StorePath != out1 {
		t.Fatalf("after kill -9 during switch, inProgress = %+v", st.InProgress)
	}
	out2 := st.InProgress.Candidate.StorePath
	if l.profileTarget() != out2 {
		t.Fatalf("the profile should point at the half-switched generation, got %q", l.profileTarget())
	}
	waitFor(t, "the killed switch to go away", 10*time.Second, func() bool { return !children(out2 + "/bin/switch-to-configuration") })

	r := l.apply(0)
	if !strings.Contains(r.stderr, "rolling back to the previous generation") {
		t.Errorf("the recovering run did not roll back first:\n%s", r.stderr)
	}
	want := testflake.Join(
		testflake.Succeeded("switch", out1),
		[]testflake.Call{{Action: "switch", Toplevel: out2, Result: "start"}}, // killed
		testflake.Succeeded("switch", out1),                                   // recovery
		testflake.Succeeded("switch", out2),                                   // retried
	)
	if diff := cmp.Diff(want, l.calls()); diff != "" {
		t.Errorf("calls: -want, +got:\n%s", diff)
	}
	s := l.status()
	if s.Applied.Commit != c2 || s.Applied.StorePath != out2 || s.InProgress != nil || l.profileTarget() != out2 || testflake.Current(l.rec) != out2 {
		t.Errorf("after recovery: applied %+v, inProgress %+v, profile %q, current %q", s.Applied, s.InProgress, l.profileTarget(), testflake.Current(l.rec))
	}
	if m := l.metrics(); m["nix_gitops_rollbacks_total"] != 1 {
		t.Errorf("rollbacks_total = %v, want 1 (the recovery)", m["nix_gitops_rollbacks_total"])
	}

	// A commit whose switch is interrupted twice is given up.
	c3 := l.commit(testflake.System{Version: "3", SwitchSleep: 2})
	for i := 0; i < 2; i++ {
		n := len(l.calls())
		l.killDuring("the switch again", func() bool {
			c := l.calls()
			return len(c) > n && c[len(c)-1].Result == "start" && c[len(c)-1].Toplevel != out2
		})
	}
	l.apply(21)
	s = l.status()
	if _, bad := s.IsBad(c3); !bad || s.Applied.Commit != c2 || testflake.Current(l.rec) != out2 || l.profileTarget() != out2 {
		t.Errorf("after two interrupted switches of %s: bad %v, applied %s, current %q, profile %q", c3[:8], s.BadCommits, s.Applied.Commit, testflake.Current(l.rec), l.profileTarget())
	}
}

// TestKillDuringFirstSwitch: converging from nothing, the agent is killed
// during the very first switch. There is no generation to return to, so
// the next run goes forward: it runs the switch again (it does not take
// the profile it set for an activation) and ends consistent. Fake: the
// stand-in toplevel.
func TestKillDuringFirstSwitch(t *testing.T) {
	l := newLab(t)
	c1 := l.commit(testflake.System{Version: "1", SwitchSleep: 2})
	l.killDuring("the first switch", func() bool {
		c := l.calls()
		return len(c) == 1 && c[0].Result == "start"
	})
	r := l.apply(0)
	if !strings.Contains(r.stderr, "no previous generation to return to; applying again") {
		t.Errorf("the recovering run did not say what it did:\n%s", r.stderr)
	}
	s := l.status()
	out := s.Applied.StorePath
	want := testflake.Join([]testflake.Call{{Action: "switch", Toplevel: out, Result: "start"}}, testflake.Succeeded("switch", out))
	if diff := cmp.Diff(want, l.calls()); diff != "" {
		t.Errorf("calls: -want, +got:\n%s", diff)
	}
	if s.Applied.Commit != c1 || s.InProgress != nil || testflake.Current(l.rec) != out || l.profileTarget() != out {
		t.Errorf("after recovery: applied %+v, inProgress %+v, current %q", s.Applied, s.InProgress, testflake.Current(l.rec))
	}
}

// TestStopDuringSwitch: systemd stopping the unit (SIGTERM) during a switch
// lets the switch and its gate finish: stopping it half way would force a
// rollback (the unit's KillMode=mixed and TimeoutStopSec leave the time).
// A second SIGTERM aborts: the run rolls back to the previous generation at
// once, without holding the stop against the commit, and the next run
// applies it. Fake: the stand-in toplevel.
func TestStopDuringSwitch(t *testing.T) {
	for _, signals := range []int{1, 2} {
		t.Run(fmt.Sprintf("%dSIGTERM", signals), func(t *testing.T) {
			l := newLab(t)
			l.commit(testflake.System{Version: "1"})
			l.apply(0)
			out1 := l.status().Applied.StorePath
			c2 := l.commit(testflake.System{Version: "2", SwitchSleep: 3})
			cmd, stderr := l.start("apply")
			waitFor(t, "the switch", 30*time.Second, func() bool {
				c := l.calls()
				return len(c) == 3 && c[2].Result == "start"
			})
			for i := 0; i < signals; i++ {
				if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			code := testenv.ExitCode(t, cmd.Wait())
			s := l.status()
			if signals == 1 {
				if code != 0 || s.Applied.Commit != c2 || testflake.Current(l.rec) != s.Applied.StorePath {
					t.Fatalf("one SIGTERM: exit %d, applied %+v; want the switch finished and applied\n%s", code, s.Applied, stderr.String())
				}
				return
			}
			if code != 20 {
				t.Fatalf("two SIGTERMs during the switch: exit %d, want 20\n%s", code, stderr.String())
			}
			if _, bad := s.IsBad(c2); bad || testflake.Current(l.rec) != out1 || l.profileTarget() != out1 {
				t.Errorf("after the stop: bad %v, current %q, profile %q; want not bad, both %q", s.BadCommits, testflake.Current(l.rec), l.profileTarget(), out1)
			}
			l.apply(0)
			if s := l.status(); s.Applied.Commit != c2 {
				t.Errorf("the commit was not applied after the stop: %+v", s.Last)
			}
		})
	}
}

// TestStopDuringBuild: a SIGTERM during the build abandons it at once
// (nothing on the machine has changed), stops the builder, and does not hold
// the stop against the commit: exit 23, and the next run builds it again.
func TestStopDuringBuild(t *testing.T) {
	l := newLab(t)
	l.commit(testflake.System{Version: "1"})
	l.apply(0)
	out1 := l.status().Applied.StorePath
	c2 := l.commit(testflake.System{Version: "2", BuildSleep: 30})
	cmd, stderr := l.start("apply")
	waitFor(t, "the build", 30*time.Second, func() bool { return len(descendants(cmd.Process.Pid, nixBuildOf(l))) > 0 })
	t0 := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := testenv.ExitCode(t, cmd.Wait())
	if code != 23 || time.Since(t0) > 15*time.Second {
		t.Fatalf("SIGTERM during the build: exit %d after %s, want 23 at once\n%s", code, time.Since(t0), stderr.String())
	}
	s := l.status()
	if _, bad := s.IsBad(c2); bad || l.profileTarget() != out1 || s.InProgress != nil {
		t.Errorf("after the stop: bad %v, profile %q, in progress %+v", s.BadCommits, l.profileTarget(), s.InProgress)
	}
	waitFor(t, "the builder to stop", 10*time.Second, func() bool { return !children("/bin/sleep\x0030\x00") })
}
