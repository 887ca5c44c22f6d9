package nixcheck

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// goModules are the sources the flake builds with buildGoModule, by the key
// nix/pkgs/vendor-hashes.json uses: "main" is the repo's own module as the
// flake holds it (function-machine; src = git-tracked files); "nix-gitops"
// is the same module as nix/pkgs/sources.nix selects it (go mod
// vendor of fewer packages vendors fewer dependencies, so its hash is its
// own); the others are folders (the crossplane CLI's tools module; src =
// the folder as it is).
var goModules = []struct {
	key     string
	dir     string
	tracked bool
	fileset string // a source of nix/pkgs/sources.nix
}{
	{key: "main", dir: ".", tracked: true},
	{key: "nix-gitops", dir: ".", fileset: "nix-gitops"},
	{key: "hack/tools/crossplane", dir: "hack/tools/crossplane"},
}

// moduleSource copies what buildGoModule's src holds into a temporary folder.
func moduleSource(t *testing.T, root, dir string, tracked bool, fileset string) string {
	t.Helper()
	src := filepath.Join(root, dir)
	var files []string
	if fileset != "" {
		var err error
		if files, err = SourceFiles(context.Background(), root, fileset); err != nil {
			t.Fatal(err)
		}
	} else if tracked {
		var err error
		if files, err = TrackedFiles(context.Background(), src); err != nil {
			t.Fatal(err)
		}
	} else {
		err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			files = append(files, rel)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	tmp := t.TempDir()
	if err := CopyFiles(src, tmp, files); err != nil {
		t.Fatal(err)
	}
	return tmp
}

// TestVendorHashes recomputes each module's vendorHash and compares
// it with the flake's. With -update it rewrites nix/pkgs/vendor-hashes.json
// (also `make nix-vendor-hash`).
func TestVendorHashes(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix")
	testenv.LookPath(t, "git")
	root := testenv.RepoRoot(t)
	have, err := ReadVendorHashes(root)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, m := range goModules {
		h, err := VendorHash(context.Background(), moduleSource(t, root, m.dir, m.tracked, m.fileset))
		if err != nil {
			t.Fatalf("module %s: %v", m.key, err)
		}
		want[m.key] = h
		if !*update && have[m.key] != h {
			t.Errorf("module %s: the flake's vendorHash is %q, but go.mod/go.sum now vendor to %q: run `make nix-vendor-hash` (go test ./internal/nixcheck -run TestVendorHashes -update) and commit %s",
				m.key, have[m.key], h, VendorHashesFile)
		}
	}
	for k := range have {
		if _, ok := want[k]; !ok && !*update {
			t.Errorf("%s has a hash for %q, which the flake does not build", VendorHashesFile, k)
		}
	}
	if *update {
		if err := WriteVendorHashes(root, want); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVendorHashFollowsDependencies proves the check above can fail: adding
// a dependency to a copy of the module changes the hash. The new dependency
// is a local module (a replace directive), so it needs no network.
func TestVendorHashFollowsDependencies(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix")
	testenv.LookPath(t, "git")
	root := testenv.RepoRoot(t)
	src := moduleSource(t, root, ".", true, "")
	before, err := VendorHash(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}

	dep := filepath.Join(t.TempDir(), "dep")
	write := func(p, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dep, "go.mod"), "module example.com/nixcheckdep\n\ngo 1.22\n")
	write(filepath.Join(dep, "dep.go"), "package nixcheckdep\n\n// V is used.\nconst V = 1\n")
	write(filepath.Join(src, "internal/nixcheckuse/use.go"), "package nixcheckuse\n\nimport \"example.com/nixcheckdep\"\n\nvar _ = nixcheckdep.V\n")
	for _, args := range [][]string{
		{"mod", "edit", "-require=example.com/nixcheckdep@v0.0.0", "-replace=example.com/nixcheckdep=" + dep},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	after, err := VendorHash(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if before == after {
		t.Errorf("adding a dependency left the vendor hash at %s; the check could not catch a dependency change", before)
	}
}
