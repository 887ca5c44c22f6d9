package nixcheck

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// trackedCopy copies the repo's git-tracked files into a fresh folder: what a
// commit of the repo holds.
func trackedCopy(t *testing.T, root string) string {
	t.Helper()
	files, err := TrackedFiles(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := CopyFiles(root, dst, files); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestAgentSourceIgnoresOtherFiles: nix-gitops is built from a filtered
// copy of its own Go sources (nix/pkgs/sources.nix, builtins.path, real
// nix), so a commit
// that changes only other files (the README, a claim, another program) gives
// the same source path, and with the fixed version the same package and the
// same host toplevels: such a commit switches nothing. A change of the
// agent's own code does change it.
func TestAgentSourceIgnoresOtherFiles(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix-instantiate")
	root := testenv.RepoRoot(t)
	ctx := context.Background()
	base := trackedCopy(t, root)
	path := func(dir string) string {
		t.Helper()
		p, err := SourcePath(ctx, dir, "nix-gitops")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := path(base)
	edit := func(dir, file, text string) {
		t.Helper()
		f, err := os.OpenFile(filepath.Join(dir, file), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(text); err != nil {
			t.Fatal(err)
		}
	}
	cases := map[string]struct {
		reason string
		file   string
		text   string
		same   bool
	}{
		"README":       {reason: "a README edit is outside the agent's source", file: "README.md", text: "\nmore words\n", same: true},
		"Claim":        {reason: "a new claim is outside it", file: "crossplane/claims/web09.yaml", text: "# a claim\n", same: true},
		"OtherProgram": {reason: "the composition function's code is outside it", file: "internal/function/function.go", text: "\n// x\n", same: true},
		"HostConfig":   {reason: "another host's configuration is outside it", file: "nix/hosts/docker01/configuration.nix", text: "\n", same: true},
		"AgentCode":    {reason: "the agent's own code is inside it", file: "internal/agent/agent.go", text: "\n// x\n", same: false},
		"GoMod":        {reason: "go.mod is inside it", file: "go.mod", text: "\n", same: false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := CopyFiles(base, dir, mustTracked(t, root)); err != nil {
				t.Fatal(err)
			}
			edit(dir, tc.file, tc.text)
			if got := path(dir) == before; got != tc.same {
				t.Errorf("%s: same source path = %v, want %v", tc.reason, got, tc.same)
			}
		})
	}
	// No per-commit version: nix/pkgs names none of the flake's revisions
	// (flake.nix gives only the template its commit, as its floor).
	for _, f := range []string{"nix/pkgs/default.nix", "nix/pkgs/sources.nix"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if code, _, _ := strings.Cut(line, "#"); true {
				for _, rev := range []string{"shortRev", "dirtyShortRev", "self.rev", "lastModified"} {
					if strings.Contains(code, rev) {
						t.Errorf("%s uses %s: a per-commit value in a package changes every host's toplevel: %q", f, rev, line)
					}
				}
			}
		}
	}
}

func mustTracked(t *testing.T, root string) []string {
	t.Helper()
	files, err := TrackedFiles(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestAgentSourceCoversItsPackages: the fileset holds every package of this
// module that nix-gitops and its tests import (go list -deps -test), so
// buildGoModule, which runs those tests, finds them; a new import outside
// the fileset fails here, not on a user's machine.
func TestAgentSourceCoversItsPackages(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix-instantiate")
	root := testenv.RepoRoot(t)
	files, err := SourceFiles(context.Background(), root, "nix-gitops")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-deps", "-test", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./cmd/nix-gitops")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, _ := filepath.Rel(root, dir)
		goFiles, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range goFiles {
			r, _ := filepath.Rel(root, f)
			// Only nix-gitops' own tests run in its build.
			if strings.HasSuffix(r, "_test.go") && rel != "cmd/nix-gitops" {
				continue
			}
			if !slices.Contains(files, r) {
				t.Errorf("package %s is imported by nix-gitops (or its tests), but %s is not in nix/pkgs/sources.nix's nix-gitops source", rel, r)
			}
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if !slices.Contains(files, f) {
			t.Errorf("%s is not in the nix-gitops source", f)
		}
	}
}
