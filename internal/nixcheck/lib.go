package nixcheck

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// NixpkgsLibTarball is nixpkgs' lib folder as a tarball, a test dependency
// in the shared folder beside the checkout (NIXPKGS_LIB_TARBALL moves it).
func NixpkgsLibTarball(repo string) (string, error) {
	if p := os.Getenv("NIXPKGS_LIB_TARBALL"); p != "" {
		return p, nil
	}
	m, _ := filepath.Glob(filepath.Join(repo, "..", "shared", "nixpkgs-lib", "nixpkgs-lib-*.tar.gz"))
	if len(m) != 1 {
		return "", fmt.Errorf("cannot find nixpkgs' lib: want one ../shared/nixpkgs-lib/nixpkgs-lib-*.tar.gz beside the checkout (found %d), or set NIXPKGS_LIB_TARBALL", len(m))
	}
	return m[0], nil
}

// UnpackNixpkgsLib unpacks the lib tarball into dir and returns the folder
// that holds lib/ (never inside the repo).
func UnpackNixpkgsLib(repo, dir string) (string, error) {
	tb, err := NixpkgsLibTarball(repo)
	if err != nil {
		return "", err
	}
	if out, err := exec.Command("tar", "-xzf", tb, "-C", dir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("cannot unpack %s: %v: %s", tb, err, out)
	}
	m, _ := filepath.Glob(filepath.Join(dir, "*", "lib", "default.nix"))
	if len(m) != 1 {
		return "", fmt.Errorf("%s holds no */lib/default.nix", tb)
	}
	return filepath.Dir(filepath.Dir(m[0])), nil
}

// LibExpr is a Nix expression for nixpkgs' lib unpacked at libDir, through
// testdata/lib.nix (run from this package's folder).
func LibExpr(libDir string) string {
	here, _ := os.Getwd()
	return fmt.Sprintf("(import %s (/. + %s))", NixString(filepath.Join(here, "testdata", "lib.nix")), NixString(libDir))
}

// FilesetFiles lists, relative to repo, the files of the named source in
// repo's nix/pkgs/sources.nix, as lib.fileset selects them.
func FilesetFiles(ctx context.Context, repo, libDir, name string) ([]string, error) {
	expr := fmt.Sprintf(`let lib = %s; fs = lib.fileset; s = import (/. + %s) { inherit lib; }; in
		map (p: lib.removePrefix (toString (/. + %s) + "/") (toString p)) (fs.toList (fs.fromSource s.%s))`,
		LibExpr(libDir), NixString(filepath.Join(repo, "nix/pkgs/sources.nix")), NixString(repo), name)
	var files []string
	if err := EvalJSON(ctx, repo, expr, &files); err != nil {
		return nil, err
	}
	return files, nil
}

// SourcePath is the store path of the named source of repo's
// nix/pkgs/sources.nix.
func SourcePath(ctx context.Context, repo, libDir, name string) (string, error) {
	expr := fmt.Sprintf(`(import (/. + %s) { lib = %s; }).%s.outPath`, NixString(filepath.Join(repo, "nix/pkgs/sources.nix")), LibExpr(libDir), name)
	var p string
	if err := EvalJSON(ctx, repo, expr, &p); err != nil {
		return "", err
	}
	if !strings.HasPrefix(p, "/nix/store/") {
		return "", fmt.Errorf("source %s evaluates to %q, not a store path", name, p)
	}
	return p, nil
}
