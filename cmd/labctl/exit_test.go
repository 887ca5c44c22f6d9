package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// buildLabctl builds the real binary.
func buildLabctl(t *testing.T) string {
	t.Helper()
	goTool := testenv.LookPath(t, "go")
	bin := filepath.Join(t.TempDir(), "labctl")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("cannot build labctl: %v\n%s", err, out)
	}
	return bin
}

func run(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	code = testenv.ExitCode(t, cmd.Run())
	return o.String(), e.String(), code
}

// TestExitCodes runs the binary as make demo and CI do: validate and render
// exit 0 on the repo, and non-zero, naming file and field, on a bad claim.
func TestExitCodes(t *testing.T) {
	testenv.Real(t) // builds a binary: a few seconds
	bin := buildLabctl(t)
	root := testenv.RepoRoot(t)

	if out, errOut, code := run(t, bin, "-C", root, "validate"); code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Errorf("validate on the repo: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if out, errOut, code := run(t, bin, "-C", root, "render"); code != 0 || strings.Count(out, "kind: EnvironmentVM") != 2 {
		t.Errorf("render on the repo: exit %d, stderr %q", code, errOut)
	}

	bad := t.TempDir()
	for _, p := range []string{repo.XRDPath, repo.CompositionPath, "crossplane/claims/dns01.yaml", "nix/hosts/dns01/configuration.nix"} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(p, "dns01.yaml") {
			b = bytes.Replace(b, []byte("ip: 10.0.10.53"), []byte("ip: 10.0.20.53"), 1)
		}
		if err := os.MkdirAll(filepath.Join(bad, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bad, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := "crossplane/claims/dns01.yaml: spec.network.ip: 10.0.20.53 is outside spec.network.cidr 10.0.10.0/24"
	if _, errOut, code := run(t, bin, "-C", bad, "validate"); code == 0 || !strings.Contains(errOut, want) {
		t.Errorf("validate on a bad claim: exit %d, want non-zero and %q in stderr:\n%s", code, want, errOut)
	}
	if out, errOut, code := run(t, bin, "-C", bad, "render"); code == 0 || out != "" || !strings.Contains(errOut, "spec.network.ip: 10.0.20.53 is outside") {
		t.Errorf("render of a bad claim: exit %d, stdout %q, stderr %q; want non-zero, nothing printed, the field named", code, out, errOut)
	}
}
