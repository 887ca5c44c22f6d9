package nixcheck

import (
	"strings"
	"testing"
)

// TestTimerOffLeavesTheSystem: with timer.enable off the agent's timer unit
// is not among the units the module ships, so the switch that turns it off
// stops the running timer (switch-to-configuration stops an active unit the
// new system lacks, unless it says X-StopOnRemoval=false:
// internal/stcstandin's TestCollect "Removed" case); kept, it would only be
// restarted with its drop-in gone, and go on firing until the next boot.
func TestTimerOffLeavesTheSystem(t *testing.T) {
	script := func(timer bool) string {
		t.Helper()
		on := "false"
		if timer {
			on = "true"
		}
		var s string
		body := `builtins.concatStringsSep "\n" (map (p: p.script or "") r.eval.config.systemd.packages)`
		if err := evalNixOS(t, mods(repoFile(t, "nix/modules/nix-gitops.nix"),
			"{ services.nix-gitops = { enable = true; package = "+fakeAgent+"; timer.enable = "+on+"; }; }"), body, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	const rm = "rm $out/lib/systemd/system/nix-gitops-apply.timer"
	if s := script(false); !strings.Contains(s, rm) {
		t.Errorf("timer off: the units package keeps the timer:\n%s", s)
	}
	if s := script(true); strings.Contains(s, rm) {
		t.Errorf("timer on: the units package removes the timer:\n%s", s)
	}
}
