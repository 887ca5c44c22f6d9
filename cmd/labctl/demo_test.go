package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// TestDemoOnAFreshClone runs the Quickstart's first command as a new user
// does: `make demo` in a clone of the repository with nothing beside it (no
// ../shared), with only Go, git, make and the module proxy.
func TestDemoOnAFreshClone(t *testing.T) {
	testenv.Real(t) // builds the binaries: a minute
	for _, tool := range []string{"git", "make", "go"} {
		testenv.LookPath(t, tool)
	}
	clone := filepath.Join(t.TempDir(), "homelab-infra") // its parent holds nothing else
	if out, err := exec.Command("git", "clone", "-q", testenv.RepoRoot(t), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	cmd := exec.Command("make", "demo")
	cmd.Dir = clone
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make demo failed on a fresh clone: %v\n%s", err, out)
	}
	for _, want := range []string{"ok: 2 claims", "kind: VirtualMachine", "# user-data of dns01, decoded"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("make demo's output lacks %q:\n%s", want, out)
		}
	}
}
