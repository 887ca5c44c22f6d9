package main

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// freeAddr returns a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestUnreachableRemoteAtFirstBoot: the git server is not reachable when
// the first-boot apply starts ("network not up yet"). The agent retries
// with back-off; when the server stays away it fails before switching with
// a clear status, the machine untouched; when the server comes up during
// the back-off it converges. The server is the real git http-backend on
// loopback. Fake: the stand-in toplevel (testflake).
func TestUnreachableRemoteAtFirstBoot(t *testing.T) {
	l := newLab(t)
	l.commit(testflake.System{Version: "1"})
	addr := freeAddr(t)
	l.cfg["flake"] = l.repo.FlakeRef("http://"+addr+"/remote.git", "h1")

	// Down for good: 2 attempts, then a failure before switching, with the
	// exit status that makes the first-boot unit try again later.
	r := l.apply(23, "--first-boot")
	if strings.Count(r.stderr, "retrying") != 1 {
		t.Errorf("want one retry logged (2 attempts):\n%s", r.stderr)
	}
	s := l.status()
	if s.Last.Outcome != "failed" || s.Last.Stage != "poll" || !strings.Contains(s.Last.Error, "cannot reach the remote") || s.Applied != nil || s.FirstBootDone {
		t.Errorf("status after an unreachable remote: %+v", s.Last)
	}
	if l.profileTarget() != "" || len(l.calls()) != 0 {
		t.Errorf("an unreachable remote must leave the system untouched: profile %q, calls %v", l.profileTarget(), l.calls())
	}
	if m := l.metrics(); m[`nix_gitops_failures_total{stage=poll}`] != 1 {
		t.Errorf("failures_total{stage=poll} = %v, want 1", m[`nix_gitops_failures_total{stage=poll}`])
	}

	// The network comes up while the agent backs off.
	l.cfg["retry"] = map[string]any{"attempts": 10, "initial": "300ms", "max": "1s"}
	cmd := l.cmd("apply", "--first-boot")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first retry", 20*time.Second, func() bool { return strings.Contains(stderr.String(), "retrying") })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: &testflake.Server{Root: filepath.Dir(l.repo.Bare)}}
	go srv.Serve(ln)
	defer srv.Close()
	err = cmd.Wait()
	if err != nil {
		t.Fatalf("apply after the server came up: %v\n%s", err, stderr.String())
	}
	if s := l.status(); s.Last.Outcome != "applied" || !s.FirstBootDone {
		t.Errorf("status after the server came up: %+v", s.Last)
	}
}

// TestFailuresBeforeSwitch: a broken flake (eval error), a failing build,
// and failures whose cause is outside the commit (a timeout, nix killed by a
// signal, an input that cannot be fetched) leave the system on the old
// generation with a clear status. Each is retried as its cause deserves: an
// eval error waits for a new commit; a failed build is retried after an
// hour; the others after a short back-off, and their exit status (23) makes
// systemd retry the unit. Fake: the stand-in toplevel (testflake).
func TestFailuresBeforeSwitch(t *testing.T) {
	cases := map[string]struct {
		reason   string
		sys      testflake.System
		inputs   map[string]string
		timeouts map[string]any
		kill     string // kill this child (by its command line) with SIGKILL during the run
		stage    string
		errMsg   string
		exit     int
		retry    time.Duration // 0: not retried until a new commit
	}{
		"EvalError": {reason: "a flake that does not evaluate is the commit's fault", sys: testflake.System{Version: "2", EvalError: true},
			stage: "eval", errMsg: "fails to evaluate on purpose", exit: 21},
		"BuildFail": {reason: "a failed build may not be the commit's fault: retried after an hour", sys: testflake.System{Version: "2", BuildFail: true},
			stage: "build", errMsg: "build fails on purpose", exit: 21, retry: time.Hour},
		"BuildTimesOut": {reason: "a build that hangs is stopped by timeouts.build, and retried", sys: testflake.System{Version: "2", BuildSleep: 60},
			timeouts: map[string]any{"build": "1s"}, stage: "build", errMsg: "timed out", exit: 23, retry: time.Minute},
		"EvalTimesOut": {reason: "an evaluation that takes too long is stopped by timeouts.eval, and retried", sys: testflake.System{Version: "2", EvalSlow: 20_000},
			timeouts: map[string]any{"eval": "200ms"}, stage: "eval", errMsg: "timed out", exit: 23, retry: time.Minute},
		"EvalKilled": {reason: "nix killed by a signal (the OOM killer) says nothing about the commit", sys: testflake.System{Version: "2", EvalSlow: 20_000},
			kill: "\x00eval\x00--raw\x00", stage: "eval", errMsg: "signal: killed", exit: 23, retry: time.Minute},
		"InputUnreachable": {reason: "an input that cannot be fetched is the network's fault", sys: testflake.System{Version: "2"},
			inputs: map[string]string{"private": "git+http://127.0.0.1:1/private.git"}, stage: "eval", errMsg: "127.0.0.1", exit: 23, retry: time.Minute},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			l := newLab(t)
			l.commit(testflake.System{Version: "1"})
			l.apply(0)
			before := l.status()
			bad, err := l.repo.Commit(testflake.Spec{Hosts: map[string]testflake.System{"h1": tc.sys}, Inputs: tc.inputs}, testflake.CommitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.timeouts != nil {
				l.cfg["timeouts"] = tc.timeouts
			}
			t0 := time.Now()
			if tc.kill != "" {
				cmd, stderr := l.start("apply")
				waitFor(t, "nix eval to start", 30*time.Second, func() bool { return len(descendants(cmd.Process.Pid, tc.kill)) > 0 })
				time.Sleep(200 * time.Millisecond) // into the evaluation proper
				for _, p := range descendants(cmd.Process.Pid, tc.kill) {
					_ = syscall.Kill(p, syscall.SIGKILL)
				}
				code := testenv.ExitCode(t, cmd.Wait())
				if code != tc.exit {
					t.Fatalf("%s: exit %d, want %d\n%s", tc.reason, code, tc.exit, stderr)
				}
			} else {
				l.apply(tc.exit)
			}
			if time.Since(t0) > 30*time.Second {
				t.Errorf("%s: the failure took %s", tc.reason, time.Since(t0))
			}
			if tc.timeouts != nil && tc.stage == "build" {
				// The builder runs in a session of its own: nix must have
				// been told to stop it, not just killed.
				waitFor(t, "the timed-out builder to be stopped", 10*time.Second, func() bool { return !children("/bin/sleep\x0060\x00") })
			}
			s := l.status()
			if s.Last.Outcome != "failed" || s.Last.Stage != tc.stage || !strings.Contains(s.Last.Error, tc.errMsg) {
				t.Errorf("%s: last run %+v, want failed at %s with %q", tc.reason, s.Last, tc.stage, tc.errMsg)
			}
			if diff := cmp.Diff(before.Applied, s.Applied); diff != "" {
				t.Errorf("%s: the applied generation changed: -want, +got:\n%s", tc.reason, diff)
			}
			if l.profileTarget() != before.Applied.StorePath || testflake.Current(l.rec) != before.Applied.StorePath || len(l.calls()) != 2 {
				t.Errorf("%s: the system moved: profile %q, current %q, calls %v", tc.reason, l.profileTarget(), testflake.Current(l.rec), l.calls())
			}
			if len(s.BadCommits) != 1 || s.BadCommits[0].Commit != bad || s.BadCommits[0].Stage != tc.stage {
				t.Fatalf("%s: bad commits %+v", tc.reason, s.BadCommits)
			}
			got := time.Duration(0)
			if b := s.BadCommits[0]; !b.RetryAfter.IsZero() {
				got = b.RetryAfter.Sub(b.Time).Round(time.Second)
			}
			if got != tc.retry {
				t.Errorf("%s: retried after %s, want %s", tc.reason, got, tc.retry)
			}
			if s.InProgress != nil {
				t.Errorf("%s: a finished run left inProgress %+v", tc.reason, s.InProgress)
			}
			if m := l.metrics(); m[`nix_gitops_failures_total{stage=`+tc.stage+`}`] != 1 {
				t.Errorf("%s: failures_total{stage=%s} = %v", tc.reason, tc.stage, m[`nix_gitops_failures_total{stage=`+tc.stage+`}`])
			}

			// Not retried yet: one ref lookup, nothing else.
			r := l.apply(tc.exit)
			if got := logValue(r.stderr, "run finished", "processes"); got != "1" || !strings.Contains(r.stderr, "not retried") {
				t.Errorf("%s: the bad head was retried at once (%s processes):\n%s", tc.reason, got, r.stderr)
			}
			if tc.retry != 0 {
				// Once the back-off has passed (moved into the past here), it
				// is tried again.
				l.ageBadCommits(tc.retry)
				r := l.run("apply")
				if !strings.Contains(r.stderr, "retrying a commit") || !strings.Contains(r.stderr, "msg=building") {
					t.Errorf("%s: the commit was not tried again after its back-off:\n%s", tc.reason, r.stderr)
				}
			}
			// A new commit is tried.
			good := l.commit(testflake.System{Version: "3"})
			l.cfg["timeouts"] = map[string]any{}
			l.apply(0)
			if s := l.status(); s.Applied.Commit != good {
				t.Errorf("%s: the fix was not applied: %+v", tc.reason, s.Applied)
			}
		})
	}
}

// TestFailuresAfterSwitch: a failing switch-to-configuration and a failing
// health gate roll back automatically to the previous generation, and the
// commit is not retried. Fake: the stand-in toplevel (testflake), whose
// switch-to-configuration fails on request; the health gate's TCP probe
// and script are real.
func TestFailuresAfterSwitch(t *testing.T) {
	cases := map[string]struct {
		reason   string
		sys      testflake.System
		health   map[string]any
		timeouts map[string]any
		stage    string
		errMsg   string
		badCall  bool // the new generation's switch itself fails
		killed   bool // ... or is killed by the timeout
	}{
		"SwitchTimesOut": {
			reason: "a switch that hangs is killed by timeouts.switch (comin has no such timeout)", sys: testflake.System{Version: "2", SwitchSleep: 60},
			timeouts: map[string]any{"switch": "1s"}, stage: "switch", errMsg: "timed out", killed: true,
		},
		"SwitchFails": {
			reason: "switch-to-configuration exits non-zero", sys: testflake.System{Version: "2", SwitchExit: 4},
			stage: "switch", errMsg: "exit status 4", badCall: true,
		},
		"HealthScriptFails": {
			reason: "the user's health script fails after the switch", sys: testflake.System{Version: "2"},
			health: map[string]any{"settle": "1s", "script": "SCRIPT"},
			stage:  "health", errMsg: "script",
		},
		"HealthTCPFails": {
			reason: "a required port does not answer after the switch", sys: testflake.System{Version: "2"},
			health: map[string]any{"settle": "1s", "tcp": []string{"ADDR"}},
			stage:  "health", errMsg: "tcp",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			l := newLab(t)
			c1 := l.commit(testflake.System{Version: "1"})
			l.apply(0)
			before := l.status()
			out1 := before.Applied.StorePath
			c2 := l.commit(tc.sys)
			if tc.health != nil {
				script := filepath.Join(l.dir, "health.sh")
				if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'service x is down' >&2\nexit 1\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				h := map[string]any{}
				for k, v := range tc.health {
					switch v {
					case "SCRIPT":
						v = script
					}
					if k == "tcp" {
						v = []string{freeAddr(t)}
					}
					h[k] = v
				}
				l.cfg["health"] = h
			}
			if tc.timeouts != nil {
				l.cfg["timeouts"] = tc.timeouts
			}
			r := l.apply(20)
			s := l.status()
			if s.Last.Outcome != "rolled-back" || s.Last.Stage != tc.stage || s.Last.Commit != c2 || !strings.Contains(s.Last.Error, tc.errMsg) {
				t.Errorf("%s: last run %+v, want rolled-back at %s", tc.reason, s.Last, tc.stage)
			}
			if s.Applied.Commit != c1 || s.Applied.StorePath != out1 {
				t.Errorf("%s: applied %+v, want %s", tc.reason, s.Applied, c1)
			}
			if l.profileTarget() != out1 || testflake.Current(l.rec) != out1 || s.Profile.Number != 1 {
				t.Errorf("%s: after rollback profile → %q (generation %d), current %q; want %q, generation 1", tc.reason, l.profileTarget(), s.Profile.Number, testflake.Current(l.rec), out1)
			}
			calls := l.calls()
			if len(calls) < 5 {
				t.Fatalf("%s: calls %v", tc.reason, calls)
			}
			out2 := calls[2].Toplevel
			second := testflake.Succeeded("switch", out2)
			switch {
			case tc.badCall:
				second = testflake.Failed("switch", out2)
			case tc.killed:
				second = second[:1] // started, never finished
			}
			want := testflake.Join(testflake.Succeeded("switch", out1), second, testflake.Succeeded("switch", out1))
			if diff := cmp.Diff(want, calls); diff != "" {
				t.Errorf("%s: calls: -want, +got:\n%s", tc.reason, diff)
			}
			if _, bad := s.IsBad(c2); !bad {
				t.Errorf("%s: %s not remembered as bad: %+v", tc.reason, c2, s.BadCommits)
			}
			m := l.metrics()
			if m["nix_gitops_rollbacks_total"] != 1 || m[`nix_gitops_failures_total{stage=`+tc.stage+`}`] != 1 || m[`nix_gitops_last_outcome{outcome=rolled-back,stage=`+tc.stage+`}`] != 1 {
				t.Errorf("%s: metrics rollbacks %v failures %v", tc.reason, m["nix_gitops_rollbacks_total"], m[`nix_gitops_failures_total{stage=`+tc.stage+`}`])
			}
			_ = r

			// The commit is not retried.
			l.apply(21)
			if got := len(l.calls()); got != len(want) {
				t.Errorf("%s: the bad commit was retried: %d calls", tc.reason, got)
			}
		})
	}
}
