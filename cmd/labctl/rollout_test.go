package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/rollout"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// TestRolloutPlanCLI: `labctl rollout plan` as a workflow's first step runs
// it, in an empty folder, against a remote holding this repository's
// commit on main: the plan, the waves for withParam, the pinned target.
// The rollout suite (test/rollout) runs the rest against real agents.
func TestRolloutPlanCLI(t *testing.T) {
	testenv.Real(t)
	git := testenv.LookPath(t, "git")
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	remote := filepath.Join(dir, "remote.git")
	for _, args := range [][]string{{"init", "-q", "--bare", remote}, {"-C", root, "push", "-q", remote, "HEAD:refs/heads/main"}} {
		if out, err := exec.Command(git, args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	head, err := exec.Command(git, "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	waves, target := filepath.Join(dir, "waves.json"), filepath.Join(dir, "target")
	out, errOut, code := runIn(t, dir, "", "rollout", "plan", "-C", work, "--remote", remote, "--role=dns", "-o", "json",
		"--waves-file", waves, "--target-file", target)
	if code != exitOK {
		t.Fatalf("rollout plan: exit %d\n%s", code, errOut)
	}
	var p rollout.Plan
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("rollout plan -o json: %v\n%s", err, out)
	}
	if p.Target != strings.TrimSpace(string(head)) || p.Group != "role-dns" {
		t.Errorf("plan: target %q, group %q; want %s, role-dns", p.Target, p.Group, head)
	}
	var ww []rollout.WorkflowWave
	b, _ := os.ReadFile(waves)
	if err := json.Unmarshal(b, &ww); err != nil {
		t.Fatalf("--waves-file: %v\n%s", err, b)
	}
	want := []rollout.WorkflowWave{{Name: "canary", Canary: true, Gate: "dns", Why: "dns01 has role dns", Hosts: []string{"dns01"}, List: "dns01"}}
	if diff := cmp.Diff(want, ww); diff != "" {
		t.Errorf("--waves-file (-want, +got):\n%s", diff)
	}
	if b, _ := os.ReadFile(target); string(b) != p.Target {
		t.Errorf("--target-file holds %q, want %s", b, p.Target)
	}

	// A target that is not on main is refused, naming why.
	_, errOut, code = runIn(t, dir, "", "rollout", "plan", "-C", work, "--remote", remote, "--target", "HEAD~1000000")
	if code != exitProblems || !strings.Contains(errOut, "cannot resolve") {
		t.Errorf("an unknown target: exit %d, stderr %q", code, errOut)
	}
}

// TestRolloutGate: a gate's decision, as the workflow's decide step records
// it: approved exits 0 naming the approver, rejected exits 1 naming them.
func TestRolloutGate(t *testing.T) {
	out, _, code := runIn(t, t.TempDir(), "", "rollout", "gate", "dns", "--decision", "approve", "--approver", "alice")
	if code != exitOK || !strings.Contains(out, "approved by alice") {
		t.Errorf("approve: exit %d, %q", code, out)
	}
	_, errOut, code := runIn(t, t.TempDir(), "", "rollout", "gate", "reboot", "--decision", "reject", "--approver", "bob")
	if code != exitProblems || !strings.Contains(errOut, "rejected by bob") {
		t.Errorf("reject: exit %d, %q", code, errOut)
	}
}
