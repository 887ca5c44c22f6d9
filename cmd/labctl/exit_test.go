package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// buildLabctl builds the real binary, once for every test of the package.
func buildLabctl(t *testing.T) string {
	t.Helper()
	goTool := testenv.LookPath(t, "go")
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "labctl-test-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "labctl")
		if out, err := exec.Command(goTool, "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("cannot build labctl: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// TestMain removes the shared binary.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func runBin(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
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

	if out, errOut, code := runBin(t, bin, "-C", root, "validate"); code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Errorf("validate on the repo: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if out, errOut, code := runBin(t, bin, "-C", root, "render"); code != 0 || strings.Count(out, "kind: VirtualMachine") != 2 {
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
	if _, errOut, code := runBin(t, bin, "-C", bad, "validate"); code == 0 || !strings.Contains(errOut, want) {
		t.Errorf("validate on a bad claim: exit %d, want non-zero and %q in stderr:\n%s", code, want, errOut)
	}
	if out, errOut, code := runBin(t, bin, "-C", bad, "render"); code == 0 || out != "" || !strings.Contains(errOut, "spec.network.ip: 10.0.20.53 is outside") {
		t.Errorf("render of a bad claim: exit %d, stdout %q, stderr %q; want non-zero, nothing printed, the field named", code, out, errOut)
	}
}

// TestCompletion runs the binary as bash does after `labctl completion
// bash`: COMP_LINE set, the candidates printed one a line.
func TestCompletion(t *testing.T) {
	testenv.Real(t) // builds a binary: a few seconds
	bin := buildLabctl(t)
	root := testenv.RepoRoot(t)
	cases := map[string]struct {
		reason string
		line   string
		want   []string
	}{
		"Verbs":   {reason: "verbs complete", line: "labctl re", want: []string{"render"}},
		"Flags":   {reason: "a verb's flags complete", line: "labctl validate --sch", want: []string{"--schemas"}},
		"Claims":  {reason: "render completes the repo's claim names", line: "labctl render dns", want: []string{"dns01"}},
		"Classes": {reason: "new machine completes the Composition's classes", line: "labctl new machine web01 --class ", want: []string{"small", "medium", "large"}},
		"Output":  {reason: "-o completes its formats", line: "labctl render -o ", want: []string{"json", "yaml"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(bin)
			cmd.Dir = filepath.Join(root, "crossplane")
			cmd.Env = append(os.Environ(), "COMP_LINE="+tc.line, "COMP_POINT="+fmt.Sprint(len(tc.line)))
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v", tc.reason, err)
			}
			for _, w := range tc.want {
				if !strings.Contains("\n"+string(out), "\n"+w+"\n") {
					t.Errorf("%s: %q lacks %q:\n%s", tc.reason, tc.line, w, out)
				}
			}
		})
	}
}
