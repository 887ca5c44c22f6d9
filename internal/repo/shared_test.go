package repo_test

import (
	"errors"
	"os/exec"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// TestNothingReadsCopiedSources: the copies of other projects' source kept
// beside the checkout for a while (the old provider stack's) are no
// dependency of this repo: no tracked file names their folders, as a path
// or as the parts of a filepath.Join. The pattern is built from two parts
// so that this file does not match it.
func TestNothingReadsCopiedSources(t *testing.T) {
	pattern := "shared" + `(/|", *")(proxmox|provider-proxmox-bpg)([^a-z0-9-]|$)`
	cmd := exec.Command("git", "grep", "-I", "-n", "-E", pattern)
	cmd.Dir = testenv.RepoRoot(t)
	out, err := cmd.Output()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		// git grep found nothing.
	case err != nil:
		t.Fatalf("git grep: %v", err)
	default:
		t.Errorf("these lines read a copy of another project's source, which will be deleted:\n%s", out)
	}
}
