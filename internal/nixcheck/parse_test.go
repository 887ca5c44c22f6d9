package nixcheck

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// nixFiles lists every .nix file of the repo (tracked or not), skipping .git
// and folders of other tools' state.
func nixFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin" || d.Name() == "_output" || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".nix") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("cannot walk the repo: %v", err)
	}
	return files
}

func TestEveryNixFileParses(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix-instantiate")
	root := testenv.RepoRoot(t)
	files := nixFiles(t, root)
	// The Nix side must exist: a walk that finds nothing proves nothing.
	for _, must := range []string{"flake.nix", "nix/lib/hosts.nix", "nix/modules/base.nix", "nix/modules/nix-gitops.nix"} {
		found := false
		for _, f := range files {
			found = found || f == filepath.Join(root, must)
		}
		if !found {
			t.Errorf("%s was not found among the .nix files", must)
		}
	}
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		t.Run(rel, func(t *testing.T) {
			if err := ParseFile(context.Background(), f); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestParseFileRejectsBrokenNix(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix-instantiate")
	cases := map[string]struct {
		reason string
		text   string
		ok     bool
	}{
		"Valid":            {reason: "a module with an attribute path parses", text: "{ ... }: { a.b = 1; }", ok: true},
		"MissingSemicolon": {reason: "a missing ; is a syntax error", text: "{ a = 1 }"},
		"UnclosedBrace":    {reason: "an open brace is a syntax error", text: "{ a = { b = 1; };"},
		"BadString":        {reason: "an unterminated string is a syntax error", text: `{ a = "x; }`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "m.nix")
			if err := os.WriteFile(f, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			err := ParseFile(context.Background(), f)
			if (err == nil) != tc.ok {
				t.Errorf("%s\nParseFile(%q): err = %v, want ok = %v", tc.reason, tc.text, err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), f) {
				t.Errorf("%s\nthe error %q does not name the file", tc.reason, err)
			}
		})
	}
}
