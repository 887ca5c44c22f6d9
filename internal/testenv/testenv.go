// Package testenv decides what a test does when a real component it needs
// (nix, git, qemu, the control-plane binaries) is missing.
//
// The rule: `go test -short` (make unit) skips such tests, so the inner loop
// stays fast on any machine. Without -short (make test, CI) a missing
// component is a failure, never a skip: a skipped test is not a passed test.
package testenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Real marks t as a test of real components. Under -short it skips t.
func Real(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("real-component test: skipped under -short (make unit); make test runs it")
	}
}

// LookPath returns the path of the named program. Under -short it skips t when
// the program is missing; otherwise it fails t with a hint to run make test,
// whose set-up installs everything.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if testing.Short() {
		t.Skipf("%s not installed: skipped under -short", name)
	}
	t.Fatalf("cannot find %s: %v (run `make test`, or hack/deps.sh, to install the test dependencies)", name, err)
	return ""
}

// RepoRoot returns the root of this repository: the nearest parent folder of
// the test's working directory that holds go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("cannot get working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("cannot find the repository root above the working directory")
		}
		dir = parent
	}
}

// ProviderCRDsDir returns the folder of our provider's generated CRDs
// (provider/package/crds; `make provider-generate` writes them).
func ProviderCRDsDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(RepoRoot(t), ProviderCRDsPath)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("cannot read the provider's CRDs: %v (make provider-generate writes them)", err)
	}
	return dir
}

// ProviderCRDsPath is where the provider's CRDs are, from the repo root.
const ProviderCRDsPath = "provider/package/crds"

// ExitCode is a finished child's exit status; an error that is not an exit
// status (the program could not start) fails t.
func ExitCode(t testing.TB, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// ModLib returns the folder holding modlib's lib/ (import <folder>/lib):
// this repo's own stand-in of nixpkgs' lib (internal/nixcheck/modlib), the
// module system the tests evaluate nix/modules and nix/lib with, since
// nixpkgs cannot be fetched here.
func ModLib(t testing.TB) string {
	t.Helper()
	Real(t)
	return filepath.Join(RepoRoot(t), "internal", "nixcheck", "modlib")
}
