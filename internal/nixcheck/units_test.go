package nixcheck

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// TestSystemdTree renders the units of nix-gitops.nix and
// nix-gitops-secrets.nix (a machine with the daemon and a secret that
// restarts a unit) as NixOS would install them in /etc/systemd/system
// (units.go, the stand-in of nixpkgs' systemd-lib.nix), compares them with
// the golden file (-update rewrites it), and has the real systemd-analyze
// verify parse them, drop-ins and all, with the agent built here in place
// of its package and /usr in place of the others.
func TestSystemdTree(t *testing.T) {
	bin := agentBinary(t)
	testenv.LookPath(t, "systemd-analyze")
	root := testenv.RepoRoot(t)
	ms := mods(repoFile(t, "nix/modules/nix-gitops.nix"), repoFile(t, "nix/modules/nix-gitops-secrets.nix"),
		"{ services.nix-gitops.package = "+fakeAgent+"; }",
		`{ `+vaultHost+` services.nix-gitops.daemon.enable = true;
		   services.nix-gitops.secrets.app = { kv = { path = "secret/x/y"; field = "k"; }; restartUnits = [ "app.service" ]; };
		   systemd.services.app = { description = "an app that reads its secret"; wantedBy = [ "multi-user.target" ];
		     serviceConfig = { Type = "simple"; ExecStart = "/bin/sleep infinity"; }; }; }`)
	sd, err := EvalSystemd(context.Background(), root, ms)
	if err != nil {
		t.Fatal(err)
	}
	if len(sd.FailedAssertions) > 0 {
		t.Fatalf("assertions fail: %v", sd.FailedAssertions)
	}
	agentDir := filepath.Join(t.TempDir(), "agent")
	if err := os.MkdirAll(filepath.Join(agentDir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(agentDir, "bin", "nix-gitops")); err != nil {
		t.Fatal(err)
	}
	tree, err := sd.Tree(context.Background(), map[string]string{fakeAgentPath: agentDir})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, p := range sortedKeys(tree.Files) {
		fmt.Fprintf(&b, "=== %s\n%s", p, tree.Files[p])
	}
	for _, p := range sortedKeys(tree.Links) {
		fmt.Fprintf(&b, "=== %s -> %s\n", p, tree.Links[p])
	}
	testenv.Golden(t, filepath.Join("testdata", "units", "daemon-secrets.golden"), []byte(b.String()), *update)

	// What systemd makes of it.
	dir := t.TempDir()
	var units []string
	for p, text := range tree.Files {
		text = strings.ReplaceAll(text, fakeAgentPath, agentDir)
		text = FakeStoreRE.ReplaceAllString(text, "/usr")
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(p, "/") {
			units = append(units, filepath.Join(dir, p))
		}
	}
	testenv.SystemdVerify(t, dir, units)
}
