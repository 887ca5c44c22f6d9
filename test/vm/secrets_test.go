//go:build vm

package vm

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
)

// The secrets unit of our module (nix-gitops-secrets.nix, rendered as NixOS
// installs it) in the system, with the real Vault.
//
// nix-gitops-secrets.service is wanted by multi-user.target, which every
// switch starts again and waits for; the switch runs inside an agent run
// that holds the agent's lock. A secrets unit that waited for that lock
// would deadlock the switch (switch → multi-user.target → secrets unit →
// lock → the run → switch), so it runs `secrets --no-wait` and counts
// "another run holds the lock" (75) as success: the run writes the secrets
// itself before every switch. Two cases, each a switch:
//   - boot 3: V adds the unit (and a secret, and an app that needs it);
//   - boot 5: V boots with Vault down (the unit fails, and so does the app),
//     then Vault is back and the switch to W starts the failed unit again.

// checkSecretsAdded: the switch to V added nix-gitops-secrets.service and
// started it, while the run that switched held the lock.
func checkSecretsAdded(t *testing.T, s *snap, commit string, v *vaultLab) {
	t.Helper()
	s.ran(t, "applied", commit, "")
	s.applied(t, commit)
	s.contains(t, "switch-journal", "the following new units were started:", "nix-gitops-secrets.service")
	checkSecretsUnit(t, s, v)
}

// checkSecretsAfterFail: at boot with Vault down the unit failed; after the
// switch to commit (Vault back) it ran again and all is well.
func checkSecretsAfterFail(t *testing.T, down, s *snap, commit string, v *vaultLab) {
	t.Helper()
	if got := down.units["nix-gitops-secrets.service ActiveState"]; got != "failed" {
		t.Errorf("%s: nix-gitops-secrets.service is %q at boot with Vault down, want failed", down.name, got)
	}
	down.contains(t, "failed-units", "nix-gitops-secrets.service")
	s.ran(t, "applied", commit, "")
	s.applied(t, commit)
	checkSecretsUnit(t, s, v)
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
