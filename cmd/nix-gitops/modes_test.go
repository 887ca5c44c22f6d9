package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// TestKernelChange: when the new toplevel's kernel differs from the booted
// system's, the policy onKernelChange=boot activates it with
// switch-to-configuration boot, and either policy records reboot-required
// (status and metric). Fake: the stand-in toplevel, whose kernel file's
// content stands for the kernel.
func TestKernelChange(t *testing.T) {
	cases := map[string]struct {
		reason   string
		policy   string
		kernel   string
		action   string
		rebootRq bool
	}{
		"SameKernelSwitches":    {reason: "no kernel change: a plain switch", policy: "boot", kernel: "k1", action: "switch"},
		"NewKernelBootPolicy":   {reason: "kernel changed and policy boot", policy: "boot", kernel: "k2", action: "boot", rebootRq: true},
		"NewKernelSwitchPolicy": {reason: "kernel changed, policy switch: switch, but a reboot is still due", policy: "switch", kernel: "k2", action: "switch", rebootRq: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			l := newLab(t)
			l.commit(testflake.System{Version: "1", Kernel: "k1", Initrd: "i1"})
			l.apply(0)
			out1 := l.status().Applied.StorePath
			// The machine booted generation 1.
			if err := os.Symlink(out1, filepath.Join(l.dir, "booted-system")); err != nil {
				t.Fatal(err)
			}
			l.cfg["onKernelChange"] = tc.policy
			l.commit(testflake.System{Version: "2", Kernel: tc.kernel, Initrd: "i1"})
			l.apply(0)
			s := l.status()
			calls := l.calls()
			if diff := cmp.Diff(testflake.Succeeded(tc.action, s.Applied.StorePath), calls[2:]); diff != "" {
				t.Errorf("%s: -want, +got:\n%s", tc.reason, diff)
			}
			if s.RebootRequired != tc.rebootRq || s.Applied.SwitchMode != tc.action {
				t.Errorf("%s: rebootRequired %v, switchMode %q; want %v, %q", tc.reason, s.RebootRequired, s.Applied.SwitchMode, tc.rebootRq, tc.action)
			}
			want := map[bool]float64{false: 0, true: 1}[tc.rebootRq]
			if got := l.metrics()["nix_gitops_reboot_required"]; got != want {
				t.Errorf("%s: nix_gitops_reboot_required = %v, want %v", tc.reason, got, want)
			}
			if tc.action == "boot" && testflake.Current(l.rec) != out1 {
				t.Errorf("%s: boot must not change the running system: current %q", tc.reason, testflake.Current(l.rec))
			}
		})
	}
}

// TestManualRollback: `nix-gitops rollback` re-activates the good
// generation before the applied one and keeps the agent from re-applying
// the commit it rolled back from. Fake: the stand-in toplevel.
func TestManualRollback(t *testing.T) {
	l := newLab(t)
	r := l.run("rollback")
	if r.code == 0 || !strings.Contains(r.stderr, "nothing to roll back to") {
		t.Errorf("rollback with no history: exit %d\n%s", r.code, r.stderr)
	}
	c1 := l.commit(testflake.System{Version: "1"})
	l.apply(0)
	out1 := l.status().Applied.StorePath
	c2 := l.commit(testflake.System{Version: "2"})
	l.apply(0)
	if r := l.run("rollback"); r.code != 0 {
		t.Fatalf("rollback: exit %d, want 0\n%s", r.code, r.stderr)
	}
	s := l.status()
	if s.Applied.Commit != c1 || l.profileTarget() != out1 || testflake.Current(l.rec) != out1 || s.Profile.Number != 1 {
		t.Errorf("after rollback: applied %s, profile %q (gen %d), current %q; want %s, %q", s.Applied.Commit, l.profileTarget(), s.Profile.Number, testflake.Current(l.rec), c1, out1)
	}
	if b, bad := s.IsBad(c2); !bad || b.Stage != "manual-rollback" {
		t.Errorf("the commit rolled back from must be remembered: %+v", s.BadCommits)
	}
	l.apply(21)
	if testflake.Current(l.rec) != out1 {
		t.Errorf("the agent re-applied the commit rolled back from")
	}
	c3 := l.commit(testflake.System{Version: "3"})
	l.apply(0)
	if s := l.status(); s.Applied.Commit != c3 {
		t.Errorf("a new commit after the rollback was not applied: %+v", s.Last)
	}
}

// TestFirstBootStamp: nix-gitops-apply.service runs `apply --first-boot`
// at every boot; after the first success that start does nothing (no poll,
// no process), which is how the unit "disables itself" on NixOS's
// read-only unit folders. A start by the timer ($TRIGGER_UNIT) and
// everyBoot still apply. Fake: the stand-in toplevel.
func TestFirstBootStamp(t *testing.T) {
	l := newLab(t)
	l.commit(testflake.System{Version: "1"})
	l.apply(0, "--first-boot")
	if !l.status().FirstBootDone {
		t.Fatalf("firstBootDone not recorded")
	}
	c2 := l.commit(testflake.System{Version: "2"})
	r := l.apply(10, "--first-boot")
	if got := logValue(r.stderr, "run finished", "processes"); got != "0" || !strings.Contains(r.stderr, "first boot already converged") {
		t.Errorf("a boot-time start after the first success must do nothing (%s processes):\n%s", got, r.stderr)
	}
	l.env = append(l.env, "TRIGGER_UNIT=nix-gitops-apply.timer")
	l.apply(0, "--first-boot")
	if s := l.status(); s.Applied.Commit != c2 {
		t.Errorf("a timer-triggered start did not apply: %+v", s.Last)
	}
	l.env = l.env[:len(l.env)-1]
	c3 := l.commit(testflake.System{Version: "3"})
	l.cfg["everyBoot"] = true
	l.apply(0, "--first-boot")
	if s := l.status(); s.Applied.Commit != c3 {
		t.Errorf("everyBoot did not apply at boot: %+v", s.Last)
	}
}

// TestBootTimeStartOncePerBoot: every switch starts multi-user.target
// again, which wants nix-gitops-apply.service. Its ExecCondition= (`apply
// --first-boot --condition`) lets the boot-time start run until one run has
// ended as a success for systemd in this boot, then skips the starts a
// switch makes (exit 1); the timer's starts ($TRIGGER_UNIT) and a later
// boot still run. Fake: the stand-in toplevel.
func TestBootTimeStartOncePerBoot(t *testing.T) {
	l := newLab(t)
	condition := func(want int, why string) {
		t.Helper()
		if r := l.run("apply", "--first-boot", "--condition"); r.code != want {
			t.Errorf("%s: the condition exited %d, want %d\n%s", why, r.code, want, r.stderr)
		}
	}
	condition(0, "no run yet in this boot")
	// A boot-time run that fails is retried by the unit: it runs again.
	l.commit(testflake.System{Version: "1", BuildFail: true})
	l.apply(23, "--first-boot")
	condition(0, "the boot-time run failed (the unit retries it)")
	l.commit(testflake.System{Version: "2"})
	// Manual runs and the daemon's are not boot-time runs.
	l.apply(0)
	condition(0, "only a run with --first-boot counts")
	l.apply(10, "--first-boot")
	condition(1, "the boot-time run has finished in this boot")
	l.env = append(l.env, "TRIGGER_UNIT=nix-gitops-apply.timer")
	condition(0, "a start by the timer")
	l.env = l.env[:len(l.env)-1]
	marker := filepath.Join(l.cfg["stateDir"].(string), "boot-run")
	if err := os.WriteFile(marker, []byte("00000000-0000-0000-0000-000000000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	condition(0, "the recorded run was in an earlier boot")

	if r := l.run("apply", "--condition"); r.code != 78 || !strings.Contains(r.stderr, "--condition goes with apply --first-boot") {
		t.Errorf("--condition without --first-boot: exit %d, want 78 and a message\n%s", r.code, r.stderr)
	}
}

// TestDaemon: `nix-gitops run` polls with the configured interval,
// applies a new commit, and serves the same metrics on localhost; SIGTERM
// stops it cleanly. Fake: the stand-in toplevel.
func TestDaemon(t *testing.T) {
	l := newLab(t)
	c1 := l.commit(testflake.System{Version: "1"})
	addr := freeAddr(t)
	l.cfg["poll"] = map[string]any{"interval": "200ms", "jitter": "100ms"}
	l.cfg["metrics"] = map[string]any{"listen": addr}
	cmd, stderr := l.start("run")
	defer cmd.Process.Kill()
	scrape := func() map[string]float64 {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		return parseMetrics(t, resp.Body)
	}
	applied := func(c string) func() bool {
		return func() bool {
			m := scrape()
			for k, v := range m {
				if strings.HasPrefix(k, "nix_gitops_applied_info{commit="+c) && v == 1 {
					return true
				}
			}
			return false
		}
	}
	waitFor(t, "the daemon to apply the first commit", 30*time.Second, applied(c1))
	c2 := l.commit(testflake.System{Version: "2"})
	waitFor(t, "the daemon to apply the new commit", 30*time.Second, applied(c2))
	waitFor(t, "a no-op tick after the new commit", 10*time.Second, func() bool {
		m := scrape()
		return m["nix_gitops_checks_total"] >= 3 && m[`nix_gitops_last_outcome{outcome=up-to-date,stage=}`] == 1
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("daemon exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the daemon did not stop on SIGTERM\n%s", stderr.String())
	}
	if s := l.status(); s.Applied.Commit != c2 {
		t.Errorf("status after the daemon: %+v", s.Applied)
	}
}

// TestPreemptedBuild: a commit pushed while the previous one builds
// cancels that build (eval and build are pre-emptible, as in comin); the
// run builds and applies the newer commit, and the superseded one is not
// held against anyone (not marked bad, never switched to). Fake: the
// stand-in toplevel (its build sleeps 30 s, far longer than the test).
func TestPreemptedBuild(t *testing.T) {
	l := newLab(t)
	l.commit(testflake.System{Version: "1"})
	l.apply(0)
	slow := l.commit(testflake.System{Version: "2", BuildSleep: 30})
	l.cfg["poll"] = map[string]any{"interval": "300ms"}
	cmd, stderr := l.start("apply")
	waitFor(t, "the slow build", 20*time.Second, func() bool {
		st := l.rawState()
		return st.InProgress != nil && st.InProgress.Stage == "build" && st.InProgress.Commit == slow
	})
	t0 := time.Now()
	fix := l.commit(testflake.System{Version: "3"})
	if err := cmd.Wait(); err != nil {
		t.Fatalf("apply: %v\n%s", err, stderr.String())
	}
	if time.Since(t0) > 20*time.Second {
		t.Errorf("the slow build was not cancelled: the run took %s after the push", time.Since(t0))
	}
	s := l.status()
	if s.Applied.Commit != fix || len(s.BadCommits) != 0 || !strings.Contains(stderr.String(), "a newer commit arrived during the build") {
		t.Errorf("applied %s (want %s), bad %v\n%s", s.Applied.Commit, fix, s.BadCommits, stderr.String())
	}
	for _, c := range l.calls() {
		if strings.Contains(c.Toplevel, "nixos-system-h1-2") {
			t.Errorf("the superseded commit was switched to: %+v", c)
		}
	}
}
