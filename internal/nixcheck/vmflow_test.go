package nixcheck

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// TestVMTestFlowOnThisMachine runs the steps of the NixOS VM test
// (nix/tests/agent.nix) here, with the real agent binary, real git and real
// nix, the same stand-in flakes (internal/testflake, the one fake) and the
// config.json the NixOS module writes. The VM test itself needs nixpkgs and
// runs under `nix flake check`; this proves its expectations (exit codes,
// which generation is active after each step) hold for the agent as built.
// Left out here, because this machine is not that VM: the systemd unit and
// sshd in the health gate.
func TestVMTestFlowOnThisMachine(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix")
	testenv.LookPath(t, "git")
	root := testenv.RepoRoot(t)
	tmp := t.TempDir()

	bin := filepath.Join(tmp, "nix-gitops")
	build := exec.Command("go", "build", "-o", bin, "./cmd/nix-gitops")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("cannot build nix-gitops: %v\n%s", err, out)
	}

	record := filepath.Join(tmp, "record")
	repo, err := testflake.New(filepath.Join(tmp, "git"), testflake.Options{RecordDir: record, NixSystem: "x86_64-linux"})
	if err != nil {
		t.Fatal(err)
	}
	profile := filepath.Join(tmp, "profiles", "system")
	if err := os.MkdirAll(filepath.Dir(profile), 0o755); err != nil {
		t.Fatal(err)
	}
	health := filepath.Join(tmp, "health.sh")
	healthScript := "#!/bin/sh\ncase \"$(cat " + profile + "/version)\" in *unhealthy*) exit 1 ;; esac\n"
	if err := os.WriteFile(health, []byte(healthScript), 0o755); err != nil {
		t.Fatal(err)
	}
	cfgJSON := moduleAgentConfig(t, root, fmt.Sprintf(`{
	  flake = %s;
	  stateDir = %s;
	  healthChecks = { systemRunning = false; requiredUnits = [ ]; tcp = [ ]; http = [ ];
	    script = %s; gitReachable = true; settle = "1s"; };
	  extraSettings = { profile = %s; bootedSystem = %s; };
	}`, NixString(repo.FlakeRef(repo.URL(), "machine")), NixString(filepath.Join(tmp, "state")),
		NixString(health), NixString(profile), NixString(filepath.Join(tmp, "booted-system"))))
	cfgFile := filepath.Join(tmp, "config.json")
	if err := os.WriteFile(cfgFile, cfgJSON, 0o644); err != nil {
		t.Fatal(err)
	}

	commit := func(i int) string {
		t.Helper()
		sha, err := repo.Commit(testflake.Spec{Hosts: map[string]testflake.System{"machine": vmFixtures[i].spec}}, testflake.CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return sha
	}
	apply := func(args ...string) int {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"apply", "--config", cfgFile}, args...)...)
		cmd.Env = append(os.Environ(), "NIX_CONFIG="+testflake.NixConf)
		out, err := cmd.CombinedOutput()
		t.Logf("nix-gitops apply %s:\n%s", strings.Join(args, " "), out)
		return testenv.ExitCode(t, err)
	}
	version := func() string {
		b, err := os.ReadFile(filepath.Join(profile, "version"))
		if err != nil {
			t.Fatalf("cannot read the profile's version: %v", err)
		}
		return strings.TrimSpace(string(b))
	}
	calls := func() int {
		c, err := testflake.Calls(record)
		if err != nil {
			t.Fatal(err)
		}
		return len(c)
	}

	first := commit(0)
	if got := apply("--first-boot"); got != 0 {
		t.Fatalf("first-boot apply: exit %d, want 0 (applied)", got)
	}
	if v := version(); v != "v1" {
		t.Fatalf("after the first-boot apply the profile is %q, want v1", v)
	}
	v1 := testflake.Current(record)

	n := calls()
	if got := apply("--first-boot"); got != 0 && got != 10 {
		t.Errorf("second first-boot start: exit %d, want a no-op (0 or 10)", got)
	}
	if calls() != n {
		t.Errorf("the second first-boot start switched again; after one success it must stay off")
	}

	commit(1)
	if got := apply(); got != 20 {
		t.Errorf("unhealthy commit: exit %d, want 20 (failed, rolled back)", got)
	}
	if v := version(); v != "v1" {
		t.Errorf("after the rollback the profile is %q, want v1", v)
	}
	if c := testflake.Current(record); c != v1 {
		t.Errorf("after the rollback the active toplevel is %s, want v1's %s", c, v1)
	}

	commit(2)
	if got := apply(); got != 0 {
		t.Errorf("healthy commit: exit %d, want 0 (applied)", got)
	}
	if v := version(); v != "v3" {
		t.Errorf("after the healthy commit the profile is %q, want v3", v)
	}

	if err := repo.Reset(first); err != nil {
		t.Fatal(err)
	}
	if got := apply(); got != 21 {
		t.Errorf("force-push: exit %d, want 21 (refused before switching)", got)
	}
	if v := version(); v != "v3" {
		t.Errorf("after the refused force-push the profile is %q, want v3", v)
	}
}
