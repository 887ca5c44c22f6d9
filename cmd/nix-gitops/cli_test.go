package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/agent/config"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// TestBadConfig: a bad configuration of the agent itself exits 78 with a
// message that names the key (or flag) and the fix, before touching
// anything.
func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct {
		reason string
		config string
		args   []string
		want   string
	}{
		"UnknownKey":    {reason: "a typo in the file", config: `{"stateDirr":"/x"}`, want: `unknown key "stateDirr"`},
		"RelativePath":  {reason: "a relative path given by flag", config: `{}`, args: []string{"--state-dir", "state"}, want: "stateDir (--state-dir)"},
		"BadFlakeFlag":  {reason: "a flake ref of a kind the agent does not follow", config: `{}`, args: []string{"--flake", "github:o/r"}, want: "flake (--flake)"},
		"NoTarget":      {reason: "no target file yet and no --flake", config: `{"flakeTargetFile":"` + filepath.Join(dir, "absent") + `"}`, want: "cloud-init writes it"},
		"MissingConfig": {reason: "an explicit --config that does not exist", args: []string{"--config", filepath.Join(dir, "nope.json")}, want: "cannot read config file"},
		"StrayArg":      {reason: "arguments the command does not take", config: `{}`, args: []string{"now"}, want: `unexpected argument "now"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			args := []string{"apply", "--state-dir", filepath.Join(dir, name)}
			if tc.config != "" {
				p := filepath.Join(dir, name+".json")
				if err := os.WriteFile(p, []byte(tc.config), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", p)
			}
			cmd := exec.Command(agentBin(t), append(args, tc.args...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if code := testenv.ExitCode(t, cmd.Run()); code != 78 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("%s: exit %d, want 78 with %q:\n%s", tc.reason, code, tc.want, stderr.String())
			}
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				t.Errorf("%s: a bad configuration created the state folder", tc.reason)
			}
		})
	}
}

// TestHelpAndUnits: --help lists every flag and config key (the surface
// the NixOS module is written against), and `units` writes the units.
func TestHelpAndUnits(t *testing.T) {
	out, err := exec.Command(agentBin(t), "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{config.FlagUsage, config.KeysUsage, "apply", "run", "status", "rollback", "units", "Exit codes: 0 applied (or applied for the next boot), 10 up to date"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	dir := t.TempDir()
	out, err = exec.Command(agentBin(t), "units", "--bin", "/usr/local/bin/nix-gitops", "--dir", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "nix-gitops-apply.service\nnix-gitops-apply.timer\nnix-gitops.service\n"
	if diff := cmp.Diff(want, string(out)); diff != "" {
		t.Errorf("units output: -want, +got:\n%s", diff)
	}
	b, err := os.ReadFile(filepath.Join(dir, "nix-gitops-apply.service"))
	if err != nil || !strings.Contains(string(b), "ExecStart=/usr/local/bin/nix-gitops apply --first-boot\n") {
		t.Errorf("the apply service: %v\n%s", err, b)
	}
}

// TestStatusWithoutTarget: status works before cloud-init wrote the flake
// target (an operator looking at a fresh machine).
func TestStatusWithoutTarget(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(agentBin(t), "status", "--json", "--state-dir", dir, "--flake-file", filepath.Join(dir, "absent"), "--config", filepath.Join(dir, "none.json"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if !strings.Contains(stderr.String(), "cannot read config file") {
		t.Fatalf("an explicit missing --config must fail: %v\n%s", err, stderr.String())
	}
	cmd = exec.Command(agentBin(t), "status", "--json", "--state-dir", dir, "--flake-file", filepath.Join(dir, "absent"))
	stdout.Reset()
	stderr.Reset()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if code := testenv.ExitCode(t, cmd.Run()); code != 0 || !strings.Contains(stdout.String(), `"target": "unknown: cannot read the flake target`) {
		t.Errorf("status without a target: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}
