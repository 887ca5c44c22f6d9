// Package nixcheck holds the checks of the Nix side (flake.nix, nix/**) that
// can run on a machine without nixpkgs: every .nix file parses, every NixOS
// option the modules set is a real one, the flake's Go vendor hashes match
// the go.mod/go.sum they are built from, and the flake's host list is the one
// `labctl validate` reads. They use the real nix (Debian's nix-bin) and the
// real go toolchain; nothing here fakes either.
package nixcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// nixConfig is the nix.conf the checks run with (design §4 "Nix facts"):
// flakes on, no substituters, no build users; never /etc/nix.
const nixConfig = "experimental-features = nix-command flakes\n" +
	"sandbox = false\n" +
	"substituters =\n" +
	"build-users-group =\n"

// NixEnv returns the environment for running nix: the caller's, with our
// nix.conf and without any NIX_PATH (evaluations must not find <nixpkgs>).
func NixEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "NIX_CONFIG=") || strings.HasPrefix(kv, "NIX_PATH=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "NIX_CONFIG="+nixConfig, "NIX_PATH=")
}

func run(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(dropNixWarnings(stderr.String())))
	}
	return stdout.Bytes(), nil
}

// dropNixWarnings removes nix's warning lines, which say nothing about the
// expression (for example a missing nixbld group).
func dropNixWarnings(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "warning: ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// ParseFile checks that file is syntactically valid Nix.
func ParseFile(ctx context.Context, file string) error {
	if _, err := run(ctx, "", NixEnv(), "nix-instantiate", "--parse", file); err != nil {
		return fmt.Errorf("cannot parse %s: %w", file, err)
	}
	return nil
}

// EvalJSON evaluates the Nix expression expr strictly, with dir as the
// working folder for relative paths, and decodes its JSON value into out.
func EvalJSON(ctx context.Context, dir, expr string, out any) error {
	b, err := run(ctx, dir, NixEnv(), "nix-instantiate", "--eval", "--strict", "--json", "-E", expr)
	if err != nil {
		return fmt.Errorf("cannot evaluate: %w", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("cannot decode the evaluation's JSON: %w", err)
	}
	return nil
}

// NixString quotes s as a Nix string literal.
func NixString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `${`, `\${`)
	return `"` + r.Replace(s) + `"`
}

// TrackedFiles lists the files git tracks under dir (relative to dir) that
// exist in the working tree: what a git+file flake, and so buildGoModule's
// src = self, sees.
func TrackedFiles(ctx context.Context, dir string) ([]string, error) {
	b, err := run(ctx, dir, os.Environ(), "git", "ls-files", "-z", "--", ".")
	if err != nil {
		return nil, fmt.Errorf("cannot list tracked files: %w", err)
	}
	var files []string
	for _, f := range strings.Split(string(b), "\x00") {
		if f == "" {
			continue
		}
		if st, err := os.Lstat(filepath.Join(dir, f)); err == nil && st.Mode().IsRegular() {
			files = append(files, f)
		}
	}
	return files, nil
}

// CopyFiles copies files (relative paths) from one folder to another.
func CopyFiles(from, to string, files []string) error {
	for _, f := range files {
		if err := copyFile(filepath.Join(from, f), filepath.Join(to, f)); err != nil {
			return fmt.Errorf("cannot copy %s: %w", f, err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ErrNoDependencies means a module has nothing to vendor; buildGoModule
// then wants vendorHash = null.
var ErrNoDependencies = errors.New("the module has no dependencies to vendor (use vendorHash = null)")

// VendorHash computes buildGoModule's vendorHash for the Go module in
// moduleDir: the NAR hash (SRI, sha256) of the folder `go mod vendor` makes,
// which is what nixpkgs' fixed-output goModules derivation hashes. Like that
// derivation it may download modules (through the configured GOPROXY): a
// fresh machine's cache lacks modules that only vendoring needs (packages
// behind build tags such as generate-only tools). It never writes to
// moduleDir.
func VendorHash(ctx context.Context, moduleDir string) (string, error) {
	tmp, err := os.MkdirTemp("", "nixcheck-vendor-")
	if err != nil {
		return "", fmt.Errorf("cannot make a temporary folder: %w", err)
	}
	defer os.RemoveAll(tmp)
	vendor := filepath.Join(tmp, "vendor")
	// As buildGoModule: go.sum must already hold every hash; go mod vendor
	// never adds one.
	env := append(os.Environ(), "GOWORK=off", "GOTOOLCHAIN=local")
	if _, err := run(ctx, moduleDir, env, "go", "mod", "vendor", "-o", vendor); err != nil {
		return "", fmt.Errorf("cannot vendor %s: %w", moduleDir, err)
	}
	entries, err := os.ReadDir(vendor)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return "", ErrNoDependencies
	}
	if err != nil {
		return "", fmt.Errorf("cannot read the vendor folder: %w", err)
	}
	out, err := run(ctx, "", NixEnv(), "nix", "hash", "path", "--type", "sha256", vendor)
	if err != nil {
		return "", fmt.Errorf("cannot hash the vendor folder: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// VendorHashesFile is where the flake reads its vendor hashes from.
const VendorHashesFile = "nix/pkgs/vendor-hashes.json"

// ReadVendorHashes reads the flake's vendor hashes: module folder (relative
// to the repo root, "main" for the root module) to SRI hash.
func ReadVendorHashes(repo string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(repo, VendorHashesFile))
	if err != nil {
		return nil, fmt.Errorf("cannot read the flake's vendor hashes: %w", err)
	}
	var h map[string]string
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("cannot parse %s: %w", VendorHashesFile, err)
	}
	return h, nil
}

// WriteVendorHashes rewrites the flake's vendor hashes file.
func WriteVendorHashes(repo string, h map[string]string) error {
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode vendor hashes: %w", err)
	}
	if err := os.WriteFile(filepath.Join(repo, VendorHashesFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("cannot write the flake's vendor hashes: %w", err)
	}
	return nil
}
