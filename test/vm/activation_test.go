//go:build vm

package vm

import (
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// The checks of what the activation stand-in (internal/stcstandin) and the agent did,
// one per scenario of TestClaimBootsAndConverges.

// checkFirstBootApply: the first boot's outage was retried by the unit
// (Restart=on-failure), and the switch from generation 0 ran in
// nixos-rebuild's transient unit, to the journal, and completed although it
// changed nix-gitops-apply.service itself: switch-to-configuration read
// X-RestartIfChanged=false from [Service] and left the running unit alone,
// and the unit systemd has loaded now is the new one.
func checkFirstBootApply(t *testing.T, s *snap, commitA string, git *gitServer) {
	t.Helper()
	s.last(t, "applied", commitA, "")
	s.applied(t, commitA)
	if !s.st.FirstBootDone {
		t.Errorf("b1: firstBootDone is false after a successful first boot; the unit would not disable itself")
	}
	if n := git.failed.Load(); n != 1 {
		t.Errorf("b1: the git server refused %d fetches, want 1", n)
	}
	s.contains(t, "agent-journal", "nix-gitops-apply.service: Scheduled restart job") // Restart=on-failure
	if n := len(s.r.lines("b1/invocations")); n != 2 {
		t.Errorf("b1: nix-gitops-apply.service ran %d times, want 2 (the outage, then the apply)", n)
	}
	if got := s.units["nix-gitops-apply.service ExecStart"]; !strings.Contains(got, "-nix-gitops-2/bin/nix-gitops") {
		t.Errorf("b1: the loaded nix-gitops-apply.service runs %q, want the new generation's agent (nix-gitops-2)", got)
	}
	s.contains(t, "switch-journal", "activating the configuration...", "NOT restarting the following changed units: nix-gitops-apply.service")
	if s.booted() == s.current() {
		t.Errorf("b1: the booted system is the running one (%s): generation 0 should still be the booted one", s.booted())
	}
	if n := len(s.r.lines("b1/entries")); n != 2 {
		t.Errorf("b1: boot entries %q, want generation 0 and the first commit's", s.r.lines("b1/entries"))
	}
	if f := s.r.lines("b1/failed-units"); len(f) > 0 {
		t.Errorf("b1: failed units after the first switch: %q", f)
	}
	if !strings.Contains(s.r["b1/floor"], commitA) {
		t.Errorf("b1: floor.json %q does not record the applied commit", s.r["b1/floor"])
	}
}

// checkDrift: a manual rollback (the profile back one generation, and its
// switch) is drift, and the timer's run re-applies the applied commit.
func checkDrift(t *testing.T, s, before *snap, commitA string) {
	t.Helper()
	s.contains(t, "agent-journal", "the machine drifted from the applied generation")
	s.last(t, "applied", commitA, "")
	s.applied(t, commitA)
	if s.current() != before.current() {
		t.Errorf("drift: running %s, want the applied generation %s again", s.current(), before.current())
	}
}

// checkDaemonRestart: the daemon applied a generation that changes its own
// unit (a new agent package, so a new ExecStart); the switch left it
// running (X-RestartIfChanged=false in [Service]); then it restarted itself
// and runs the new binary.
func checkDaemonRestart(t *testing.T, s *snap, commitB string) {
	t.Helper()
	s.ran(t, "applied", commitB, "")
	s.applied(t, commitB)
	s.contains(t, "switch-journal", "NOT restarting the following changed units:")
	s.contains(t, "agent-journal", "this generation changed the daemon's unit or config; restarting to run them")
	if got := s.units["nix-gitops.service ExecStart"]; !strings.Contains(got, "-nix-gitops-3/bin/nix-gitops") {
		t.Errorf("daemon: the loaded nix-gitops.service runs %q, want nix-gitops-3's", got)
	}
	if got := s.units["nix-gitops.service exe"]; !strings.Contains(got, "-nix-gitops-3/bin/nix-gitops") {
		t.Errorf("daemon: the running daemon's binary is %q, want nix-gitops-3's: it did not restart into the new generation", got)
	}
}

// checkDegradedRollback: the commit migrates state and fails its gate; the
// rollback's switch-to-configuration exits 4 (the old app cannot start on the
// migrated state). That is "rolled back, degraded": recorded and reported,
// nothing left in progress, the failed generation out of the profile.
func checkDegradedRollback(t *testing.T, s *snap, commitM, commitB string) {
	t.Helper()
	s.ran(t, "rolled-back-degraded", commitM, state.StageHealth)
	s.applied(t, commitB)
	if b, bad := s.st.IsBad(commitM); !bad || b.Stage != state.StageHealth {
		t.Errorf("degraded: want %s remembered as bad at the health stage, got %+v", commitM, s.st.BadCommits)
	}
	s.contains(t, "runs", "m: unhealthy on purpose") // the run's error carries the health script's output
	s.contains(t, "failed-units", "testflake-app.service")
	s.contains(t, "switch-journal", "warning: the following units failed: testflake-app.service")
	for _, l := range s.r.lines("degraded/entries") {
		if strings.HasSuffix(l, "-nixos-system-dns01-m") {
			t.Errorf("degraded: the failed generation is still a boot entry: %q", l)
		}
	}
}

// checkStoppedMidSwitch: `systemctl stop nix-gitops.service` while the switch
// activates: the stop waits for the switch (in its own unit) and the gate,
// and the generation is applied; nothing is half-activated.
func checkStoppedMidSwitch(t *testing.T, r report, s *snap, commit string) {
	t.Helper()
	s.ran(t, "applied", commit, "")
	s.applied(t, commit)
	if !strings.Contains(r.steps(), "systemctl stop nix-gitops.service returned after") {
		t.Errorf("stopped: the probe did not stop the daemon during the switch:\n%s", r.steps())
	}
	s.contains(t, "agent-journal", "a switch in progress finishes")
}

// checkKilledMidSwitch: the daemon killed (-9) while the switch activates:
// the switch runs on in nixos-rebuild-switch-to-configuration.service, a unit
// of its own; systemd restarts the daemon, whose next run waits for that
// switch, rolls back the interrupted attempt and applies the commit again.
func checkKilledMidSwitch(t *testing.T, r report, s *snap, commit string) {
	t.Helper()
	if !strings.Contains(r.steps(), "killed nix-gitops.service; switch unit: active") {
		t.Errorf("killed: the switch did not go on after the agent was killed:\n%s", r.steps())
	}
	s.contains(t, "agent-journal", "the previous run was interrupted after the system started to change")
	s.ran(t, "applied", commit, "")
	s.applied(t, commit)
}

// checkInhibited: a switch inhibitor changed: the agent activated it with
// boot (switch-to-configuration's pre-switch check would refuse switch), it
// is applied pending the reboot, and it is not a bad commit.
func checkInhibited(t *testing.T, r report, s *snap, commit string) {
	t.Helper()
	s.ran(t, "pending-reboot", commit, "")
	s.applied(t, commit)
	p := s.st.PendingBoot
	if p == nil || !strings.Contains(p.Reason, "testflake-db: 1 -> 2") || !s.st.RebootRequired {
		t.Errorf("inhibited: pending %+v, reboot required %v: want a pending boot naming the inhibitor", p, s.st.RebootRequired)
	}
	if _, bad := s.st.IsBad(commit); bad {
		t.Errorf("inhibited: an inhibitor change must not make the commit bad: %+v", s.st.BadCommits)
	}
	if p != nil && s.current() == p.Generation.StorePath {
		t.Errorf("inhibited: the new generation runs already; boot must not activate it")
	}
	// The reading: with the inhibitor changed, the real
	// switch-to-configuration refuses `switch` (its pre-switch check).
	if !strings.Contains(r.steps(), "Pre-switch checks failed") || !strings.Contains(r.steps(), "switch of the boot default: exit 1") {
		t.Errorf("inhibited: switch-to-configuration switch by hand must fail its pre-switch check:\n%s", r.steps())
	}
}

// checkBootGateFailed: the kernel change booted, its gate failed after that
// boot: the previous generation is the boot default again (boot), the failed
// one left the profile and the boot menu, a reboot is required, and since
// this system's reboot.allow is "window" (any time), one is scheduled.
func checkBootGateFailed(t *testing.T, r report, s *snap, commitK, commitPrev string) {
	t.Helper()
	s.last(t, "rolled-back", commitK, state.StageBootHealth)
	if b, bad := s.st.IsBad(commitK); !bad || b.Stage != state.StageBootHealth {
		t.Errorf("b4: want %s bad at boot-health, got %+v", commitK, s.st.BadCommits)
	}
	a := s.st.Applied
	if a == nil || a.Commit != commitPrev || a.SwitchMode != "boot" || s.profile() != a.StorePath || s.bootDefault() != a.StorePath {
		t.Errorf("b4: applied %+v, profile %s, boot default %s: want the previous generation the boot default again", a, s.profile(), s.bootDefault())
	}
	if !s.st.RebootRequired {
		t.Errorf("b4: a reboot must be required: the failed kernel runs")
	}
	s.noEntryFor(t, s.booted(), "the failed generation must leave the boot menu")
	if !strings.Contains(r["reboot-scheduled"], `"reboot"`) {
		t.Errorf("b4: no reboot scheduled (reboot.allow window): %q", r["reboot-scheduled"])
	}
}

// checkApplyRuns: the one-shot unit ran the agent want times in this boot.
// Every switch starts multi-user.target again (switch-to-configuration
// starts each active target), which wants nix-gitops-apply.service; once
// the boot-time start has finished, such a start must not run the agent
// again (it would only wait for the lock of the run that switches).
func checkApplyRuns(t *testing.T, s *snap, want int, why string) {
	t.Helper()
	if got := s.r.lines(s.name + "/apply-runs"); len(got) != want {
		t.Errorf("%s: nix-gitops-apply.service ran the agent %d times in this boot, want %d (%s):\n%s", s.name, len(got), want, why, strings.Join(got, "\n"))
	}
}

// checkDaemonOff: the daemon applied a generation whose module has
// daemon.enable off (and timer.enable on). The switch left the daemon
// running (X-StopOnRemoval=false: it must not stop the run that switches);
// once that run was over the daemon found its unit gone and stopped itself.
// The same switch started the timer (timers.target wants it now), whose
// first run then found nothing to do.
func checkDaemonOff(t *testing.T, s *snap, commit string) {
	t.Helper()
	s.ran(t, "applied", commit, "")
	s.applied(t, commit)
	if got := s.units["nix-gitops.service ActiveState"]; got != "inactive" {
		t.Errorf("daemonoff: nix-gitops.service is %q after the switch that turned it off, want inactive", got)
	}
	s.contains(t, "agent-journal", "the running system has no unit for the daemon")
	if got := s.units["nix-gitops-apply.timer ActiveState"]; got != "active" {
		t.Errorf("daemonoff: nix-gitops-apply.timer is %q after the switch that turned it on, want active", got)
	}
	checkApplyRuns(t, s, 2, "the boot-time start and the timer's first run")
	if f := s.r.lines(s.name + "/failed-units"); len(f) > 0 {
		t.Errorf("daemonoff: failed units: %q", f)
	}
}

// checkTimerOff: the timer's run applied a generation whose module has
// timer.enable off: the unit is not in that system, so the switch stopped
// the timer (switch-to-configuration stops an active unit the new system
// lacks, as the timer does not say X-StopOnRemoval=false).
func checkTimerOff(t *testing.T, s *snap, commit string) {
	t.Helper()
	s.ran(t, "applied", commit, "")
	s.applied(t, commit)
	if got := s.units["nix-gitops-apply.timer ActiveState"]; got != "inactive" {
		t.Errorf("timeroff: nix-gitops-apply.timer is %q after the switch that turned it off, want inactive", got)
	}
	s.contains(t, "switch-journal", "stopping the following units: nix-gitops-apply.timer")
}
