package apis

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// generated are the folders `go generate -tags generate ./apis` writes.
var generated = []string{"apis", "internal/controller", "package/crds"}

// TestGeneratedCodeIsCurrent regenerates the provider in a copy of this
// module, from config/ and the bpg version go.mod pins, and fails when any
// generated file differs from the committed one: run `make
// provider-generate` and commit the result. It runs the real generators
// (Upjet, controller-gen, angryjet), so it skips under -short.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the code generators (about a minute warm); make test runs it")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	if err := copyTree(root, tmp); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "generate", "-tags", "generate", "./apis")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go generate: %v\n%s", err, out)
	}
	want, err := files(tmp)
	if err != nil {
		t.Fatal(err)
	}
	got, err := files(root)
	if err != nil {
		t.Fatal(err)
	}
	var stale []string
	for p, b := range want {
		if c, ok := got[p]; !ok {
			stale = append(stale, p+" (missing)")
		} else if !bytes.Equal(b, c) {
			stale = append(stale, p+" (differs)")
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			stale = append(stale, p+" (no longer generated)")
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		t.Errorf("the committed generated code is stale; run `make provider-generate` and commit:\n  %s", strings.Join(stale, "\n  "))
	}
}

// files maps each file under the generated folders of root to its content.
func files(root string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, d := range generated {
		err := filepath.WalkDir(filepath.Join(root, d), func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			out[rel] = b
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// copyTree copies the regular files under src to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
}
