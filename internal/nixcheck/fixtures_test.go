package nixcheck

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

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
		// The scripts are the same in every commit: kept once, beside the
		// per-commit flake.nix files.
		for _, name := range []string{"flake.nix", "builder.sh", "switch.sh"} {
			got, err := os.ReadFile(filepath.Join(repo.Work, name))
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join(root, "nix/tests/fixtures", name)
			if name == "flake.nix" {
				golden = filepath.Join(root, "nix/tests/fixtures", f.dir, name)
			}
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("cannot read fixture (run go test ./internal/nixcheck -run Fixtures -update): %v", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s/%s differs from internal/testflake's rendering (refresh with -update): -want, +got:\n%s", f.dir, name, diff)
			}
		}
	}
}
