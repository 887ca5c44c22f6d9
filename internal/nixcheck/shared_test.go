package nixcheck

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// TestNoCopiedUpstreamCodeIsRead: the shared folder's "nixos" (the source of
// switch-to-configuration-ng) and "nixpkgs-lib" (nixpkgs' lib) are copies of
// other projects' code and go away; nothing in the repository may name them. The
// tests use this repo's own stand-ins instead (internal/nixcheck/modlib,
// internal/stcstandin) and NixOS's option data (../shared/nixos-options,
// data, which stays).
func TestNoCopiedUpstreamCodeIsRead(t *testing.T) {
	git := testenv.LookPath(t, "git")
	// Spelt in pieces, so this file does not match itself; the second form is
	// the folder named as filepath.Join parts.
	pattern := "shared" + `(/|", *")` + "(nixos|nixpkgs-lib)" + "([^-a-z]|$)"
	cmd := exec.Command(git, "grep", "-nE", pattern)
	cmd.Dir = testenv.RepoRoot(t)
	out, err := cmd.Output()
	if code := testenv.ExitCode(t, err); code != 1 || len(out) > 0 {
		t.Errorf("tracked files name the copies of upstream code that are going away (git grep -E %q, exit %d):\n%s", pattern, code, strings.TrimSpace(string(out)))
	}
}
