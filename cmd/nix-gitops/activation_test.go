package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// These tests pin what the agent decides around switch-to-configuration,
// with the recording stand-in toplevel (testflake) in place of NixOS's
// program, which the VM suite runs for real. The stand-in keeps
// rec/current-system as NixOS's activation keeps /run/current-system; a
// reboot is the test pointing booted-system (and current-system, as the
// stage-2 activation would) at the boot default.

// booted makes out the booted and running system, as a reboot into it does.
func (l *lab) booted(out string) {
	l.t.Helper()
	for _, p := range []string{filepath.Join(l.dir, "booted-system"), filepath.Join(l.rec, "current-system")} {
		_ = os.Remove(p)
		if err := os.Symlink(out, p); err != nil {
			l.t.Fatal(err)
		}
	}
}

// generations lists the profile's generation links, sorted.
func (l *lab) generations() []string {
	l.t.Helper()
	links, _ := filepath.Glob(filepath.Join(l.dir, "profiles", "system-*-link"))
	var out []string
	for _, p := range links {
		out = append(out, filepath.Base(p))
	}
	return out
}

// TestSwitchInhibitors: a change of a switch inhibitor (NixOS 26.05
// system.switch.inhibitors) makes switch-to-configuration's pre-switch
// check refuse `switch`. The agent activates such a system with `boot`
// instead and reports that a reboot is required, as comin does: it is not a
// failure and the commit is not bad. A name only one side has does not
// count (switchable-system.nix compares the names present in both). After
// the reboot the first run gates the booted generation and the reboot is
// no longer required.
func TestSwitchInhibitors(t *testing.T) {
	l := newLab(t)
	l.commit(testflake.System{Version: "1", Inhibitors: map[string]string{"systemd": "257"}})
	l.apply(0)
	out1 := l.status().Applied.StorePath
	l.booted(out1)

	c2 := l.commit(testflake.System{Version: "2", Inhibitors: map[string]string{"systemd": "257", "dbus": "new"}})
	l.apply(0)
	if s := l.status(); s.Applied.Commit != c2 || s.Applied.SwitchMode != "switch" || s.RebootRequired {
		t.Errorf("a new inhibitor name alone must not stop a switch: applied %+v, reboot required %v", s.Applied, s.RebootRequired)
	}
	out2 := l.status().Applied.StorePath

	c3 := l.commit(testflake.System{Version: "3", Inhibitors: map[string]string{"systemd": "258", "dbus": "new"}})
	l.apply(0)
	s := l.status()
	out3 := s.Applied.StorePath
	if s.Last.Outcome != "pending-reboot" || s.Applied.Commit != c3 || s.Applied.SwitchMode != "boot" || !s.RebootRequired || s.PendingBoot == nil {
		t.Fatalf("inhibitor change: last %+v, applied %+v, reboot required %v, pending %+v; want pending-reboot with boot", s.Last, s.Applied, s.RebootRequired, s.PendingBoot)
	}
	if !strings.Contains(s.PendingBoot.Reason, "systemd: 257 -> 258") || len(s.BadCommits) != 0 {
		t.Errorf("pending reason %q, bad commits %+v; want the inhibitor named and nothing bad", s.PendingBoot.Reason, s.BadCommits)
	}
	if diff := cmp.Diff(testflake.Succeeded("boot", out3), l.calls()[len(l.calls())-2:]); diff != "" {
		t.Errorf("the inhibited system must be activated with boot (-want, +got):\n%s", diff)
	}
	if testflake.Current(l.rec) != out2 {
		t.Errorf("boot must leave generation 2 running, current is %q", testflake.Current(l.rec))
	}
	if m := l.metrics(); m["nix_gitops_reboot_required"] != 1 || m[`nix_gitops_last_outcome{outcome=pending-reboot,stage=}`] != 1 {
		t.Errorf("metrics: reboot_required %v, last_outcome pending-reboot %v", m["nix_gitops_reboot_required"], m[`nix_gitops_last_outcome{outcome=pending-reboot,stage=}`])
	}
	// No drift while it waits: generation 2 is meant to keep running.
	l.apply(10)

	// The reboot: the boot default runs; the first run gates it.
	l.booted(out3)
	r := l.apply(0, "--first-boot")
	if !strings.Contains(r.stderr, "running its health gate") {
		t.Errorf("the first run after the boot must gate the booted generation:\n%s", r.stderr)
	}
	if s := l.status(); s.PendingBoot != nil || s.RebootRequired || s.Applied.StorePath != out3 {
		t.Errorf("after the reboot: pending %+v, reboot required %v, applied %+v", s.PendingBoot, s.RebootRequired, s.Applied)
	}
}

// TestBootModeGatedAfterReboot: a kernel change with onKernelChange=boot is
// applied for the next boot; its health gate runs after that boot. When it
// fails there, the machine goes back the only way a boot can be undone: the
// generation that ran before becomes the boot default again (boot), the
// failed one leaves the profile (and the boot menu made from it), and a
// reboot is required (reboot.allow is "never"; and this is not systemd).
func TestBootModeGatedAfterReboot(t *testing.T) {
	l := newLab(t)
	l.cfg["onKernelChange"] = "boot"
	c1 := l.commit(testflake.System{Version: "1", Kernel: "k1"})
	l.apply(0)
	out1 := l.status().Applied.StorePath
	l.booted(out1)

	// Unhealthy only when it runs: the script reads the running version.
	script := filepath.Join(l.dir, "health.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ncase $(cat "+filepath.Join(l.rec, "current-system")+"/version) in\n2) echo 'version 2 is broken' >&2; exit 1 ;;\nesac\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	l.cfg["health"] = map[string]any{"settle": "1s", "script": script}
	c2 := l.commit(testflake.System{Version: "2", Kernel: "k2"})
	l.apply(0)
	s := l.status()
	out2 := s.Applied.StorePath
	if s.Last.Outcome != "pending-reboot" || s.PendingBoot == nil || s.PendingBoot.Running == nil || s.PendingBoot.Running.StorePath != out1 {
		t.Fatalf("kernel change: last %+v, pending %+v; want pending-reboot, generation 1 kept running", s.Last, s.PendingBoot)
	}
	if got, want := strings.Join(l.generations(), " "), "system-1-link system-2-link"; got != want {
		t.Errorf("profile generations %q, want %q", got, want)
	}

	l.booted(out2)
	r := l.apply(20, "--first-boot")
	s = l.status()
	if s.Last.Outcome != "rolled-back" || s.Last.Stage != "boot-health" || !strings.Contains(s.Last.Error, "version 2 is broken") {
		t.Errorf("after the boot: last %+v, want rolled-back at boot-health naming the script's output", s.Last)
	}
	if s.Applied.Commit != c1 || s.Applied.StorePath != out1 || s.Applied.SwitchMode != "boot" || l.profileTarget() != out1 {
		t.Errorf("want generation 1 (%s) applied for the next boot: applied %+v, profile %q", c1, s.Applied, l.profileTarget())
	}
	if b, bad := s.IsBad(c2); !bad || b.Stage != "boot-health" {
		t.Errorf("the commit that failed after its boot must be bad: %+v", s.BadCommits)
	}
	if diff := cmp.Diff(testflake.Succeeded("boot", out1), l.calls()[len(l.calls())-2:]); diff != "" {
		t.Errorf("the way back is the previous generation's boot (-want, +got):\n%s\n%s", diff, r.stderr)
	}
	if got, want := strings.Join(l.generations(), " "), "system-1-link"; got != want {
		t.Errorf("the failed generation must leave the profile: generations %q, want %q", got, want)
	}
	if !s.RebootRequired || s.PendingBoot != nil || s.InProgress != nil {
		t.Errorf("reboot required %v, pending %+v, in progress %+v; want a reboot required and nothing pending", s.RebootRequired, s.PendingBoot, s.InProgress)
	}
	if !strings.Contains(r.stderr, "only reports it") {
		t.Errorf("the agent must say it does not reboot:\n%s", r.stderr)
	}
	// The reboot into generation 1 clears it.
	l.booted(out1)
	l.apply(21)
	if s := l.status(); s.RebootRequired {
		t.Errorf("reboot required after booting the applied generation: %+v", s.RebootReasons)
	}
}

// TestRollbackDegraded: when switching back to the previous generation
// itself exits 4 (switch-to-configuration: a unit failed), the previous
// generation runs all the same: the run is "rolled back, degraded" (exit
// 24), recorded and reported; it never leaves the attempt in progress, and
// a later good commit is applied.
func TestRollbackDegraded(t *testing.T) {
	l := newLab(t)
	l.commit(testflake.System{Version: "1"})
	l.apply(0)
	out1 := l.status().Applied.StorePath
	l.commit(testflake.System{Version: "2", SwitchExit: 1})
	// Generation 1's next switch (the rollback) exits 4.
	if err := os.WriteFile(filepath.Join(l.rec, "exit."+filepath.Base(out1)), []byte("4"), 0o644); err != nil {
		t.Fatal(err)
	}
	l.apply(24)
	s := l.status()
	if s.Last.Outcome != "rolled-back-degraded" || s.InProgress != nil || !strings.Contains(s.Last.Error, "exit status 4") {
		t.Errorf("last %+v, in progress %+v; want rolled-back-degraded and nothing in progress", s.Last, s.InProgress)
	}
	if s.Applied.StorePath != out1 || l.profileTarget() != out1 {
		t.Errorf("generation 1 must be applied and in the profile: %+v, %q", s.Applied, l.profileTarget())
	}
	if m := l.metrics(); m[`nix_gitops_last_outcome{outcome=rolled-back-degraded,stage=switch}`] != 1 || m["nix_gitops_in_progress{stage=rollback}"] != 0 {
		t.Errorf("metrics: %v", m)
	}
	c3 := l.commit(testflake.System{Version: "3"})
	l.apply(0)
	if s := l.status(); s.Applied.Commit != c3 {
		t.Errorf("a good commit after the degraded rollback was not applied: %+v", s.Last)
	}
}

// TestRollbackHygiene: a failed generation is removed from the profile, so
// it is not the newest boot entry; and the rollback goes to the generation
// that ran (current-system), not merely the profile's previous entry.
func TestRollbackHygiene(t *testing.T) {
	l := newLab(t)
	l.commit(testflake.System{Version: "1"})
	l.apply(0)
	out1 := l.status().Applied.StorePath
	// A generation set by hand and never activated: the profile's newest
	// entry, but not what runs.
	l.commit(testflake.System{Version: "set-by-hand"})
	l.apply(0)
	outOther := l.status().Applied.StorePath
	cmd := exec.Command("nix-env", "-p", filepath.Join(l.dir, "profiles", "system"), "--switch-generation", "1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nix-env: %v\n%s", err, out)
	}
	if err := exec.Command(filepath.Join(out1, "bin", "switch-to-configuration"), "switch").Run(); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command("nix-env", "-p", filepath.Join(l.dir, "profiles", "system"), "--set", outOther)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nix-env: %v\n%s", err, out)
	}

	l.cfg["health"] = map[string]any{"settle": "1s", "tcp": []string{freeAddr(t)}}
	l.commit(testflake.System{Version: "3"})
	l.apply(20)
	if testflake.Current(l.rec) != out1 || l.profileTarget() != out1 {
		t.Errorf("the rollback must return to what ran (%s), not to the profile's newest entry (%s): current %q, profile %q",
			out1, outOther, testflake.Current(l.rec), l.profileTarget())
	}
	calls := l.calls()
	failed := calls[len(calls)-4].Toplevel // switch failed start, ok; then the rollback's start, ok
	for _, g := range l.generations() {
		if target, _ := os.Readlink(filepath.Join(l.dir, "profiles", g)); target == failed {
			t.Errorf("the failed generation is still in the profile: %s → %s", g, target)
		}
	}
	// nix-env --set of generation 2's own path made no new generation.
	if got, want := strings.Join(l.generations(), " "), "system-1-link system-2-link"; got != want {
		t.Errorf("profile generations %q, want %q (the failed generation 3 removed)", got, want)
	}
}

// TestDrift: the timer and the daemon compare the running system and the
// profile with the applied generation. A manual switch to an older
// generation is re-applied (onDrift=reapply, the default) or only reported
// (onDrift=report: status, metric, no switch).
func TestDrift(t *testing.T) {
	for _, mode := range []string{"reapply", "report"} {
		t.Run(mode, func(t *testing.T) {
			l := newLab(t)
			l.cfg["onDrift"] = mode
			l.commit(testflake.System{Version: "1"})
			l.apply(0)
			out1 := l.status().Applied.StorePath
			l.commit(testflake.System{Version: "2"})
			l.apply(0)
			out2 := l.status().Applied.StorePath
			// By hand: back to generation 1 (nixos-rebuild switch --rollback).
			cmd := exec.Command("nix-env", "-p", filepath.Join(l.dir, "profiles", "system"), "--switch-generation", "1")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("nix-env: %v\n%s", err, out)
			}
			if err := exec.Command(filepath.Join(out1, "bin", "switch-to-configuration"), "switch").Run(); err != nil {
				t.Fatal(err)
			}
			calls := len(l.calls())
			l.apply(map[string]int{"reapply": 0, "report": 10}[mode])
			s := l.status()
			switch mode {
			case "reapply":
				if testflake.Current(l.rec) != out2 || l.profileTarget() != out2 || s.Drift != "" || s.Last.Outcome != "applied" {
					t.Errorf("drift not re-applied: current %q, profile %q, drift %q, last %+v", testflake.Current(l.rec), l.profileTarget(), s.Drift, s.Last)
				}
			case "report":
				if len(l.calls()) != calls || testflake.Current(l.rec) != out1 {
					t.Errorf("onDrift=report must not switch: calls %v", l.calls()[calls:])
				}
				if !strings.Contains(s.Drift, "running system is "+out1) || !strings.Contains(s.Drift, "profile points to "+out1) {
					t.Errorf("drift %q must name the running system and the profile", s.Drift)
				}
				if m := l.metrics(); m["nix_gitops_drift"] != 1 {
					t.Errorf("nix_gitops_drift = %v, want 1", m["nix_gitops_drift"])
				}
			}
		})
	}
}

// TestFloor: the floor keeps a machine from ever going back below a commit
// it ran, even with its state.json lost (the floor is a file of its own),
// or below the template's own commit at first boot (floorCommit).
func TestFloor(t *testing.T) {
	l := newLab(t)
	c1 := l.commit(testflake.System{Version: "1"})
	l.apply(0)
	c2 := l.commit(testflake.System{Version: "2"})
	l.apply(0)
	if err := os.Remove(filepath.Join(l.dir, "state", "state.json")); err != nil {
		t.Fatal(err)
	}
	if err := l.repo.Reset(c1); err != nil {
		t.Fatal(err)
	}
	l.apply(21)
	if s := l.status(); s.Last.Outcome != "refused" || !strings.Contains(s.Last.Error, "already ran (or was built from) commit "+c2[:12]) {
		t.Errorf("a lost state.json must not admit an older commit: %+v", s.Last)
	}

	// A first boot: nothing applied, no floor file; the template's commit.
	fresh := newLab(t)
	t1 := fresh.commit(testflake.System{Version: "template"})
	t2 := fresh.commit(testflake.System{Version: "2"})
	fresh.cfg["floorCommit"] = t2
	if err := fresh.repo.Reset(t1); err != nil {
		t.Fatal(err)
	}
	fresh.apply(23, "--first-boot") // refused; retried at first boot
	if s := fresh.status(); s.Last.Outcome != "refused" || s.Applied != nil {
		t.Errorf("a first boot must refuse a commit older than its template's: %+v", s.Last)
	}
	if err := fresh.repo.Reset(t2); err != nil {
		t.Fatal(err)
	}
	t3 := fresh.commit(testflake.System{Version: "3"})
	fresh.apply(0, "--first-boot")
	if s := fresh.status(); s.Applied == nil || s.Applied.Commit != t3 {
		t.Errorf("a descendant of the floor must be applied: %+v", s.Last)
	}
}
