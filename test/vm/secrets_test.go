//go:build vm

package vm

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
)

// secretsBoots are boots 5 and 6 of TestClaimBootsAndConverges: the secrets
// unit of our module (nix-gitops-secrets.nix, rendered as NixOS installs it)
// in the system, with the real Vault.
//
// nix-gitops-secrets.service is wanted by multi-user.target, which every
// switch starts again and waits for; the switch runs inside an agent run
// that holds the agent's lock. A secrets unit that waited for that lock
// would deadlock the switch (switch → multi-user.target → secrets unit →
// lock → the run → switch), so it runs `secrets --no-wait` and counts
// "another run holds the lock" (75) as success: the run writes the secrets
// itself before every switch.
//
//  5. a switch that adds the unit (and a secret, and an app that needs it);
//  6. a boot with Vault down (the unit fails, and so does the app), then Vault
//     back and a switch: the failed unit is started again by that switch.
func secretsBoots(t *testing.T, g *guest, params func(...string) probeParams, v *vaultLab, commits map[string]string) bool {
	t.Helper()
	r5, ok := bootAndReport(t, g, bootOptions{name: "boot5", timeout: bootLimit}, params(
		"boot", "advance:V", "apply", "wait:applied", "snap:secrets"))
	if !ok {
		return false
	}
	checkBoot(t, "boot5", r5, func(t *testing.T, r report) {
		s := r.snap(t, "secrets")
		s.ran(t, "applied", commits["V"], "")
		s.applied(t, commits["V"])
		s.contains(t, "switch-journal", "the following new units were started:", "nix-gitops-secrets.service")
		checkSecretsUnit(t, s, v)
	})

	v.gate.down.Store(true)
	r6, ok := bootAndReport(t, g, bootOptions{name: "boot6", timeout: bootLimit}, params(
		"boot", "snap:vaultdown", "control:vault-up", "advance:W", "apply", "wait:applied", "snap:afterfail"))
	if !ok {
		return false
	}
	checkBoot(t, "boot6", r6, func(t *testing.T, r report) {
		down := r.snap(t, "vaultdown")
		if got := down.units["nix-gitops-secrets.service ActiveState"]; got != "failed" {
			t.Errorf("vaultdown: nix-gitops-secrets.service is %q at boot with Vault down, want failed", got)
		}
		down.contains(t, "failed-units", "nix-gitops-secrets.service")
		s := r.snap(t, "afterfail")
		s.ran(t, "applied", commits["W"], "")
		s.applied(t, commits["W"])
		checkSecretsUnit(t, s, v)
	})
	return true
}

// checkSecretsUnit: after the switch, nix-gitops-secrets.service ran and
// found the lock held by the run that switched (75, its success), the secret
// is in place, the app that needs it runs, and nothing failed.
func checkSecretsUnit(t *testing.T, s *snap, v *vaultLab) {
	t.Helper()
	if st, code := s.units["nix-gitops-secrets.service ActiveState"], s.units["nix-gitops-secrets.service ExecMainStatus"]; st != "active" || code != "75" {
		t.Errorf("%s: nix-gitops-secrets.service %s with status %s, want active after exit 75 (the run that switched held the lock)", s.name, st, code)
	}
	if got := s.units["testflake-app.service ActiveState"]; got != "active" {
		t.Errorf("%s: the app that needs the secret is %q, want active", s.name, got)
	}
	if want := fmt.Sprintf("%x", sha256.Sum256([]byte(v.secret))); !strings.Contains(s.r[s.name+"/secret"], want) {
		t.Errorf("%s: the secret's file (sha256) %q, want %s", s.name, s.r[s.name+"/secret"], want)
	}
	if f := s.r.lines(s.name + "/failed-units"); len(f) > 0 {
		t.Errorf("%s: failed units: %q", s.name, f)
	}
}
