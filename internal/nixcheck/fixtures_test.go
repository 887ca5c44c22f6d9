package nixcheck

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

var update = flag.Bool("update", false, "rewrite nix/pkgs/vendor-hashes.json and nix/tests/fixtures")

// The VM test (nix/tests/agent.nix) commits these stand-in flakes inside the
// guest. They are internal/testflake's own rendering, so the VM test and the
// agent tests share one fake; this test keeps the copies current.
var vmFixtures = []struct {
	dir  string
	spec testflake.System
}{
	{"1-healthy", testflake.System{Version: "v1", Kernel: "kernel-1", Initrd: "initrd-1"}},
	{"2-unhealthy", testflake.System{Version: "v2-unhealthy", Kernel: "kernel-1", Initrd: "initrd-1"}},
	{"3-healthy", testflake.System{Version: "v3", Kernel: "kernel-1", Initrd: "initrd-1"}},
}

func TestVMTestFixturesAreTestflakesRendering(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "git")
	root := testenv.RepoRoot(t)
	repo, err := testflake.New(t.TempDir(), testflake.Options{RecordDir: "/var/lib/testflake", NixSystem: "x86_64-linux"})
	if err != nil {
		t.Fatalf("cannot make the stand-in flake repo: %v", err)
	}
	for _, f := range vmFixtures {
		if _, err := repo.Commit(testflake.Spec{Hosts: map[string]testflake.System{"machine": f.spec}}, testflake.CommitOptions{}); err != nil {
			t.Fatalf("cannot commit %s: %v", f.dir, err)
		}
		// Only flake.nix is rendered per commit; the VM test reads the
		// scripts from internal/testflake itself.
		got, err := os.ReadFile(filepath.Join(repo.Work, "flake.nix"))
		if err != nil {
			t.Fatal(err)
		}
		testenv.Golden(t, filepath.Join(root, "nix/tests/fixtures", f.dir, "flake.nix"), got, *update)
	}
}
