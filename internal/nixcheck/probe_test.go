package nixcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// maximalHost turns every module on (dns with DNS over TLS, docker,
// monitoring, the agent's daemon and a secret from Vault) on top of dns01's
// modules, so every option of ours reaches the NixOS options it feeds.
const maximalHost = `{ lib, ... }: {
  homelab.dns.tls = { enable = true; commonName = "dns01.lab.home.arpa"; pkiRole = "dns01"; };
  homelab.docker = { enable = true; users = [ "ops" ]; };
  services.nix-gitops = {
    daemon.enable = true;
    vault = { address = "https://vault.lab.home.arpa:8200"; roleId = "r"; };
    secrets.tsig = { kv = { path = "secret/x/y"; field = "k"; }; restartUnits = [ "unbound.service" ]; };
  };
}`

// probeBases: what an entry of each of our submodules needs besides the
// probed option (the options without a default).
const probeBases = `{
  "services.nix-gitops.secrets.<name>" = { kv = { path = "secret/x/y"; field = "k"; }; };
  "services.nix-gitops.secrets.<name>.pki" = { role = "r"; commonName = "c"; };
  "services.nix-gitops.secrets.<name>.kv" = { path = "secret/x/y"; field = "k"; };
  "services.nix-gitops.reboot.window" = { lower = "01:00"; upper = "05:00"; };
}`

type probeResult struct {
	Baseline []string `json:"baseline"`
	Options  []string `json:"options"`
	Probed   []string `json:"probed"`
	Findings []struct {
		Option string   `json:"option"`
		Value  *string  `json:"value"`
		Failed []string `json:"failed"`
	} `json:"findings"`
}

func runProbes(t *testing.T, modules, ourDir string) probeResult {
	t.Helper()
	root := testenv.RepoRoot(t)
	tree, err := OptionTreeFile(root)
	if err != nil {
		t.Fatal(err)
	}
	expr := fmt.Sprintf(`let lib = %s; in import %s {
	  inherit lib;
	  tree = builtins.fromJSON (builtins.readFile %s);
	  modules = %s;
	  ourDir = /. + %s;
	  bases = %s;
	}`, LibExpr(root), NixString(filepath.Join(root, "internal/nixcheck/testdata/probe.nix")), NixString(tree), modules, NixString(ourDir), probeBases)
	here, _ := os.Getwd()
	var r probeResult
	if err := EvalJSON(t.Context(), here, expr, &r); err != nil {
		t.Fatalf("cannot probe the options: %v", err)
	}
	return r
}

// TestOwnOptionsNoWiderThanNixOS: every option of ours takes only values
// that the NixOS options it feeds take too. Each is probed with values its
// own type accepts (strings with spaces, new lines, colons, no unit suffix,
// empty), on a machine with every module on; a probe that makes a NixOS
// option's type check fail means our option is wider than the one it feeds
// (homelab.timeZone feeds time.timeZone, homelab.docker.users
// users.groups.docker.members, a secret's restartUnits the secrets unit's
// before=, homelab.nix.gcOlderThan nix.gc.options): narrow it.
func TestOwnOptionsNoWiderThanNixOS(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix-instantiate")
	root := testenv.RepoRoot(t)
	r := runProbes(t, "("+machineModules(t, "dns01")+") ++ [ ("+maximalHost+") ]", filepath.Join(root, "nix/modules"))
	if len(r.Baseline) > 0 {
		t.Fatalf("the machine with every module on fails its check before any probe: %v", r.Baseline)
	}
	for _, f := range r.Findings {
		v := "(together)"
		if f.Value != nil {
			v = *f.Value
		}
		t.Errorf("%s accepts %s, but then %s fail their NixOS types: narrow %s's type", f.Option, v, strings.Join(f.Failed, ", "), f.Option)
	}
	for _, want := range []string{"homelab.timeZone", "homelab.docker.users", "services.nix-gitops.secrets.<name>.restartUnits", "homelab.nix.gcOlderThan"} {
		if !slices.Contains(r.Probed, want) {
			t.Errorf("%s was not probed (options: %v)", want, r.Options)
		}
	}
	t.Logf("%d options of ours, %d probed", len(r.Options), len(r.Probed))
}

// TestProbeCatchesAWideOption: an option of ours that is a plain string and
// feeds time.timeZone (which refuses spaces) is found.
func TestProbeCatchesAWideOption(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix-instantiate")
	dir := t.TempDir()
	f := filepath.Join(dir, "wide.nix")
	mod := `{ config, lib, ... }: {
	  options.homelab.zone = lib.mkOption { type = lib.types.str; default = "UTC"; };
	  config.time.timeZone = lib.mkForce config.homelab.zone;
	}`
	if err := os.WriteFile(f, []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runProbes(t, "("+machineModules(t, "dns01")+fmt.Sprintf(") ++ [ (/. + %s) ]", NixString(f)), dir)
	found := false
	for _, x := range r.Findings {
		found = found || x.Option == "homelab.zone" && slices.Contains(x.Failed, "time.timeZone")
	}
	if !found {
		t.Errorf("a str option feeding time.timeZone was not found wide: findings %+v", r.Findings)
	}
}
