package nixcheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// forgeWorkflows are the CI workflows that gate main with the real
// `nix flake check` where nixpkgs can be fetched: GitHub's (Gitea runs it
// too) and Forgejo's.
var forgeWorkflows = []string{".github/workflows/flake-check.yml", ".forgejo/workflows/flake-check.yml"}

type workflow struct {
	On map[string]any `json:"on"`
	// True is "on" read as YAML 1.1 reads an unquoted on (a boolean); the
	// forges read it as the key "on".
	True map[string]any `json:"true"`
	Jobs map[string]struct {
		Steps []struct {
			Uses string `json:"uses"`
			Run  string `json:"run"`
		} `json:"steps"`
	} `json:"jobs"`
}

// TestForgeWorkflows: both workflows pass actionlint (pinned in
// hack/tools/actionlint, from the Go module proxy: the checker of GitHub
// Actions' workflow syntax, which Forgejo and Gitea Actions follow), run on
// pull requests and pushes to main, and run the same gate: every host and
// the template evaluated, every system and the NixOS VM test built, the
// Proxmox template built.
func TestForgeWorkflows(t *testing.T) {
	testenv.Real(t)
	goBin := testenv.LookPath(t, "go")
	root := testenv.RepoRoot(t)
	tools := filepath.Join(root, "hack/tools/actionlint")
	args := []string{"tool", "actionlint", "-no-color", "-config-file", "actionlint.yaml"}
	for _, w := range forgeWorkflows {
		args = append(args, filepath.Join(root, w))
	}
	cmd := exec.Command(goBin, args...)
	cmd.Dir = tools
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("actionlint refuses the workflows: %v\n%s", err, out)
	}

	wantRuns := []string{"nix flake check --no-build -L", "nix flake check -L", "nix build .#proxmox-template -L"}
	for _, w := range forgeWorkflows {
		b, err := os.ReadFile(filepath.Join(root, w))
		if err != nil {
			t.Fatal(err)
		}
		var wf workflow
		if err := yaml.Unmarshal(b, &wf); err != nil {
			t.Fatalf("%s: %v", w, err)
		}
		if wf.On == nil {
			wf.On = wf.True
		}
		job, ok := wf.Jobs["flake-check"]
		if !ok {
			t.Errorf("%s has no flake-check job (the required status check the README names)", w)
			continue
		}
		var runs []string
		for _, s := range job.Steps {
			if slices.Contains(wantRuns, s.Run) {
				runs = append(runs, s.Run)
			}
		}
		if diff := cmp.Diff(wantRuns, runs); diff != "" {
			t.Errorf("%s: the gate's commands -want, +got:\n%s", w, diff)
		}
		if _, ok := wf.On["pull_request"]; !ok {
			t.Errorf("%s does not run on pull requests", w)
		}
		push, _ := wf.On["push"].(map[string]any)
		if branches, _ := push["branches"].([]any); !slices.Contains(branches, any("main")) {
			t.Errorf("%s does not run on pushes to main", w)
		}
	}
}
