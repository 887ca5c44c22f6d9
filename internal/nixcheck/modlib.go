package nixcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// ModLibDir is the folder holding modlib's lib/ (import <folder>/lib): our
// own stand-in of nixpkgs' lib, the module system the tests evaluate
// nix/modules with (internal/nixcheck/modlib, in this repo).
func ModLibDir(repo string) string {
	return filepath.Join(repo, "internal", "nixcheck", "modlib")
}

// LibExpr is a Nix expression for modlib in repo.
func LibExpr(repo string) string {
	return fmt.Sprintf("(import %s)", NixString(filepath.Join(ModLibDir(repo), "lib")))
}

var (
	treeOnce sync.Once
	treeFile string
	treeErr  error
)

// OptionTreeFile writes the NixOS option tree (OptionTree of the option
// data in OptionsDir) once per process to a temporary file and returns its
// path; testdata/nixos.nix declares the options from it.
func OptionTreeFile(repo string) (string, error) {
	treeOnce.Do(func() {
		opts, err := LoadOptions(OptionsDir(repo), filepath.Join(repo, "internal", "nixcheck", OptionsMissing))
		if err != nil {
			treeErr = err
			return
		}
		tree, _, err := OptionTree(opts)
		if err != nil {
			treeErr = err
			return
		}
		f, err := os.CreateTemp("", "nixcheck-options-*.json")
		if err != nil {
			treeErr = err
			return
		}
		defer f.Close()
		if _, err := f.Write(tree); err != nil {
			treeErr = err
			return
		}
		treeFile = f.Name()
	})
	return treeFile, treeErr
}

// WrittenOptionTree is the file OptionTreeFile wrote in this process, or ""
// (for a TestMain to remove).
func WrittenOptionTree() string { return treeFile }
