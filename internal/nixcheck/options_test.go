package nixcheck

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// allowlist is the list of real NixOS option paths; its header says which
// nixpkgs files (repository NixOS/nixpkgs, release 26.05) it was read from.
const allowlist = "testdata/nixos-options-26.05.txt"

type optionReport struct {
	Declared []string `json:"declared"`
	Set      []string `json:"set"`
	Unknown  []string `json:"unknown"`
}

// checkOptions runs testdata/optioncheck.nix with real nix over modules.
func checkOptions(t *testing.T, modules []string) optionReport {
	t.Helper()
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	var list []string
	for _, m := range modules {
		if strings.HasPrefix(m, "(") { // a Nix expression, not a file
			list = append(list, m)
			continue
		}
		list = append(list, fmt.Sprintf("(/. + %s)", NixString(m)))
	}
	expr := fmt.Sprintf(`let r = import ./testdata/optioncheck.nix { allowlist = ./%s; modules = [ %s ]; }; in { inherit (r) declared set unknown; }`,
		allowlist, strings.Join(list, " "))
	var rep optionReport
	if err := EvalJSON(context.Background(), here, expr, &rep); err != nil {
		t.Fatalf("cannot check option paths: %v", err)
	}
	return rep
}

// machineModules are the files the flake composes into machines.
func machineModules(t *testing.T, root string) []string {
	t.Helper()
	mods, err := filepath.Glob(filepath.Join(root, "nix/modules/*.nix"))
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := filepath.Glob(filepath.Join(root, "nix/hosts/*/configuration.nix"))
	if err != nil {
		t.Fatal(err)
	}
	mods = append(mods, hosts...)
	return append(mods, filepath.Join(root, "nix/template/configuration.nix"))
}

func TestModulesSetOnlyRealOptions(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix-instantiate")
	root := testenv.RepoRoot(t)
	// The VM test's node (nix/tests/agent.nix) is a module too.
	node := fmt.Sprintf("((import ./testdata/flakeeval.nix { flakeDir = /. + %s; lib = %s; }).vmTestNode)", NixString(root), LibExpr(nixpkgsLib(t)))
	rep := checkOptions(t, append(machineModules(t, root), node))
	if len(rep.Unknown) > 0 {
		t.Errorf("the modules set option paths that no NixOS 26.05 module declares (misspelt, or missing from %s after reading its declaration in nixpkgs):\n  %s",
			allowlist, strings.Join(rep.Unknown, "\n  "))
	}
	// A check that saw nothing proves nothing: these must have been walked.
	for _, want := range []string{
		"services.openssh.settings.PasswordAuthentication",
		"services.cloud-init.network.enable",
		"services.unbound.settings",
		"virtualisation.docker.daemon.settings",
		"services.prometheus.exporters.node.extraFlags",
		"systemd.services.nix-gitops-apply.restartIfChanged",
		"homelab.dns.enable",
		"proxmox.filenameSuffix",
		"systemd.services.make-test-repo.requiredBy",
		"services.nix-gitops.metricsTextfile",
	} {
		found := false
		for _, s := range rep.Set {
			found = found || s == want
		}
		if !found {
			t.Errorf("option %s was not among the paths the modules set", want)
		}
	}
}

func TestOptionCheckCatchesMisspellings(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix-instantiate")
	root := testenv.RepoRoot(t)
	cases := map[string]struct {
		reason  string
		module  string
		unknown []string
	}{
		"RealOptions": {
			reason: "declared NixOS options, an attrsOf-submodule name and freeform settings below a leaf are accepted",
			module: `{ lib, ... }: { config = lib.mkIf true { services.openssh.enable = true; users.users.alice.isNormalUser = true; services.unbound.settings.server.anything = 1; }; }`,
		},
		"MisspeltService": {
			reason:  "services.opensh is not a NixOS option",
			module:  `{ services.opensh.enable = true; }`,
			unknown: []string{"services.opensh"},
		},
		"MisspeltLeaf": {
			reason:  "a wrong last component is caught too",
			module:  `{ services.openssh.settings.PasswordAuth = false; }`,
			unknown: []string{"services.openssh.settings.PasswordAuth"},
		},
		"MisspeltOwnOption": {
			reason:  "our own homelab.* options are checked against their declarations",
			module:  `{ homelab.dns.enabel = true; }`,
			unknown: []string{"homelab.dns.enabel"},
		},
		"InsideMkMerge": {
			reason:  "every branch of mkMerge/mkIf is walked, whatever its condition",
			module:  `{ lib, ... }: { config = lib.mkMerge [ (lib.mkIf false { networking.firewal.enable = true; }) { time.timeZone = "UTC"; } ]; }`,
			unknown: []string{"networking.firewal"},
		},
		"ValueWhereSetExpected": {
			reason:  "a value given to a prefix of options is not an option",
			module:  `{ services.openssh = true; }`,
			unknown: []string{"services.openssh"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "case.nix")
			if err := os.WriteFile(f, []byte(tc.module), 0o644); err != nil {
				t.Fatal(err)
			}
			mods := []string{filepath.Join(root, "nix/modules/dns-unbound.nix"), filepath.Join(root, "nix/modules/nix-gitops.nix"), f}
			rep := checkOptions(t, mods)
			sort.Strings(rep.Unknown)
			if diff := cmp.Diff(tc.unknown, rep.Unknown, cmpEmpty); diff != "" {
				t.Errorf("%s\nunknown option paths: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

// TestModulesWorkAlone: each nixosModules.* entry can be imported without
// the others; the agent's health-gate additions appear only with its module.
func TestModulesWorkAlone(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix-instantiate")
	root := testenv.RepoRoot(t)
	mods, err := filepath.Glob(filepath.Join(root, "nix/modules/*.nix"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		t.Run(filepath.Base(m), func(t *testing.T) {
			rep := checkOptions(t, []string{m})
			if len(rep.Unknown) > 0 {
				t.Errorf("imported alone, %s sets options nothing declares: %v", filepath.Base(m), rep.Unknown)
			}
		})
	}
}

// cmpEmpty treats nil and empty slices alike.
var cmpEmpty = cmp.Transformer("nilToEmpty", func(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
})
