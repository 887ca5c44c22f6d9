package nixcheck

import (
	"strings"
	"testing"
)

// TestJournaldDropInRestartsJournald: the journal's limits are a drop-in
// (journald.conf.d), which NixOS's own restart trigger for journald
// (journald.conf) does not cover; base.nix names it as a restart trigger
// of systemd-journald.service, so a switch that changes the limits
// restarts journald (its unit's X-Restart-Triggers change) rather than
// leaving the old limits until the next boot.
func TestJournaldDropInRestartsJournald(t *testing.T) {
	var got struct {
		Triggers []string `json:"triggers"`
		DropIn   string   `json:"dropIn"`
	}
	body := `let c = r.eval.config; in {
	  triggers = c.systemd.services.systemd-journald.restartTriggers;
	  dropIn = c.environment.etc."systemd/journald.conf.d/50-homelab.conf".text;
	}`
	if err := evalNixOS(t, mods(repoFile(t, "nix/modules/base.nix"), `{ homelab.journal.systemMaxUse = "1G"; }`), body, &got); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got.DropIn, "SystemMaxUse=1G") {
		t.Fatalf("the drop-in is %q", got.DropIn)
	}
	found := false
	for _, tr := range got.Triggers {
		found = found || tr == got.DropIn
	}
	if !found {
		t.Errorf("systemd-journald.service's restartTriggers %q do not hold the drop-in: a switch that changes the limits would not restart journald", got.Triggers)
	}
}
