//go:build vm

package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/nixcheck"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// modules renders what our NixOS modules (nix-gitops.nix and
// nix-gitops-secrets.nix) give systemd for a host whose settings are host (the
// body of a NixOS module), as NixOS would install them: evaluated with
// internal/nixcheck's module system against NixOS's option data, rendered by
// its stand-in of nixpkgs' systemd-lib.nix. The units package's script runs
// with the agent built for the guest; store paths become the guest's: the
// agent package's "@agent@" (each system's own, testflake fills it in), the
// other packages' /usr (the stand-in guest's git, nix, systemd and coreutils
// live there).
type modules struct {
	root, agentDir string
}

func newModules(t *testing.T, root, dir, agent string) *modules {
	t.Helper()
	agentDir := filepath.Join(dir, "module-agent")
	if err := os.MkdirAll(filepath.Join(agentDir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(agent, filepath.Join(agentDir, "bin", "nix-gitops")); err != nil {
		t.Fatal(err)
	}
	return &modules{root: root, agentDir: agentDir}
}

// system returns a change to a testflake.System that gives it the units and
// /etc files the modules make for host.
func (m *modules) system(t *testing.T, host string) func(*testflake.System) {
	t.Helper()
	agent := nixcheck.FakeStorePath("nix-gitops")
	ms := fmt.Sprintf("[ (/. + %s) (/. + %s) { services.nix-gitops.package = { type = \"derivation\"; name = \"nix-gitops\"; outPath = %s; meta.mainProgram = \"nix-gitops\"; }; } (%s) ]",
		nixcheck.NixString(filepath.Join(m.root, "nix/modules/nix-gitops.nix")), nixcheck.NixString(filepath.Join(m.root, "nix/modules/nix-gitops-secrets.nix")),
		nixcheck.NixString(agent), host)
	sd, err := nixcheck.EvalSystemd(context.Background(), m.root, ms)
	if err != nil {
		t.Fatalf("cannot evaluate the modules for %s: %v", host, err)
	}
	if len(sd.FailedAssertions) > 0 {
		t.Fatalf("the modules' assertions fail for %s: %v", host, sd.FailedAssertions)
	}
	tree, err := sd.Tree(context.Background(), map[string]string{agent: m.agentDir})
	if err != nil {
		t.Fatalf("cannot lay out the modules' units for %s: %v", host, err)
	}
	guest := func(s string) string {
		return nixcheck.FakeStoreRE.ReplaceAllString(strings.ReplaceAll(s, agent, "@agent@"), "/usr")
	}
	files := map[string]string{}
	for p, text := range tree.Files {
		files[p] = guest(text)
	}
	etc := map[string]string{}
	if d, ok := sd.Etc["nix-gitops/secrets.json"]; ok {
		etc["nix-gitops/secrets.json"] = guest(d)
	}
	return func(s *testflake.System) {
		s.SystemdFiles, s.SystemdLinks, s.Etc = files, tree.Links, etc
	}
}
