package nixcheck

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// TestUnitsPackage builds the module's units package (systemd.packages) as
// NixOS would, by running the very script the module gives runCommand, with
// the agent as built here in place of its package, and reads what it holds:
//   - timer.enable or daemon.enable off: that unit is not in the system, so
//     the switch that turns it off ends it. switch-to-configuration stops an
//     active unit the new system lacks unless it says X-StopOnRemoval=false
//     (internal/stcstandin's TestCollect "Removed" case), which the timer
//     does not; the daemon does (a switch never stops the run that switches)
//     and stops itself once it finds its unit gone (internal/agent/daemon.go).
//     Kept, either would run on until the next boot.
//   - the units start once the flake target exists, or the config file when
//     it names the flake: the module always writes the config file, so a
//     clone without user-data (no target) must skip the start, not fail it
//     and be degraded.
func TestUnitsPackage(t *testing.T) {
	bin := agentBinary(t)
	cases := map[string]struct {
		reason    string
		settings  string
		wantUnits []string
		condition string
	}{
		"Defaults": {
			reason:    "timer and daemon off: only the boot-time unit, which waits for the flake target",
			wantUnits: []string{"nix-gitops-apply.service"},
			condition: "ConditionPathExists=/etc/nix-flake-target",
		},
		"Timer": {
			reason:    "the timer on",
			settings:  "timer.enable = true;",
			wantUnits: []string{"nix-gitops-apply.service", "nix-gitops-apply.timer"},
			condition: "ConditionPathExists=/etc/nix-flake-target",
		},
		"Daemon": {
			reason:    "the daemon on",
			settings:  "daemon.enable = true;",
			wantUnits: []string{"nix-gitops-apply.service", "nix-gitops.service"},
			condition: "ConditionPathExists=/etc/nix-flake-target",
		},
		"FlakeInConfig": {
			reason:    "the module names the flake: the config file is something to follow",
			settings:  `flake = "git+https://git.example/r?ref=main#h";`,
			wantUnits: []string{"nix-gitops-apply.service"},
			condition: "ConditionPathExists=/etc/nix-gitops/config.json",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var script string
			body := `builtins.concatStringsSep "\n" (map (p: p.script or "") r.eval.config.systemd.packages)`
			if err := evalNixOS(t, mods(repoFile(t, "nix/modules/nix-gitops.nix"),
				"{ services.nix-gitops = { enable = true; package = "+fakeAgent+"; "+tc.settings+" }; }"), body, &script); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "out")
			cmd := exec.Command("sh", "-e", "-c", strings.ReplaceAll(script, fakeAgentPath+"/bin/nix-gitops", bin))
			cmd.Env = append(os.Environ(), "out="+out)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("the units package's script fails: %v\n%s\n%s", err, b, script)
			}
			dir := filepath.Join(out, "lib/systemd/system")
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range ents {
				got = append(got, e.Name())
			}
			slices.Sort(got)
			if diff := cmp.Diff(tc.wantUnits, got); diff != "" {
				t.Errorf("%s: units (-want, +got):\n%s", tc.reason, diff)
			}
			for _, u := range got {
				b, _ := os.ReadFile(filepath.Join(dir, u))
				var conds []string
				for _, l := range strings.Split(string(b), "\n") {
					if strings.HasPrefix(l, "Condition") {
						conds = append(conds, l)
					}
				}
				if strings.HasSuffix(u, ".service") && !slices.Equal(conds, []string{tc.condition}) {
					t.Errorf("%s: %s starts on %q, want %q", tc.reason, u, conds, tc.condition)
				}
			}
		})
	}
}

var agentBin struct {
	once sync.Once
	path string
	err  error
}

// agentBinary builds cmd/nix-gitops once for the package's tests.
func agentBinary(t *testing.T) string {
	t.Helper()
	testenv.Real(t)
	testenv.LookPath(t, "go")
	agentBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "nixcheck-agent-")
		if err != nil {
			agentBin.err = err
			return
		}
		agentBin.path = filepath.Join(dir, "nix-gitops")
		build := exec.Command("go", "build", "-o", agentBin.path, "./cmd/nix-gitops")
		build.Dir = testenv.RepoRoot(t)
		if out, err := build.CombinedOutput(); err != nil {
			agentBin.err = fmt.Errorf("cannot build nix-gitops: %w\n%s", err, out)
		}
	})
	if agentBin.err != nil {
		t.Fatal(agentBin.err)
	}
	return agentBin.path
}
