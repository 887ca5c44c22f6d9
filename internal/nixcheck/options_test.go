package nixcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// machineModules is the module list the flake gives machine's nixosSystem
// (flakeeval.nix's stub records it), as a Nix expression.
func machineModules(t *testing.T, machine string) string {
	t.Helper()
	return fmt.Sprintf("%s.machineModules.%s", flakeExpr(t), machine)
}

// machineNames is every nixosConfiguration of the flake.
func machineNames(t *testing.T) []string {
	t.Helper()
	hosts, err := repo.Hosts(filepath.Join(testenv.RepoRoot(t), repo.HostsDir))
	if err != nil {
		t.Fatal(err)
	}
	return append(hosts, "template")
}

// TestMachinesFitNixOSOptions evaluates every machine as the flake composes
// it (its modules, our modules, nixpkgs' proxmox-image.nix as a stand-in)
// with modlib against NixOS's published option declarations: every option
// set exists (in the data, among ours, or in the short missing list), and
// every value given fits its declared type where it is known without
// nixpkgs. A check that saw nothing proves nothing: some values each
// module sets must have been walked.
func TestMachinesFitNixOSOptions(t *testing.T) {
	for _, m := range machineNames(t) {
		t.Run(m, func(t *testing.T) {
			c, msgs, err := checkMachine(t, machineModules(t, m))
			if err != nil {
				t.Fatalf("nixosConfigurations.%s does not evaluate against NixOS's option data: %v", m, err)
			}
			for _, p := range c.Failed {
				t.Errorf("nixosConfigurations.%s: %s: %s", m, p, msgs[p])
			}
			want := []string{
				"services.openssh.settings.PasswordAuthentication",
				"services.cloud-init.network.enable",
				"systemd.services.nix-gitops-apply.restartIfChanged",
				"services.prometheus.exporters.node.extraFlags",
				"time.timeZone",
				"nix.gc.options",
			}
			switch m {
			case "dns01":
				want = append(want, "services.unbound.settings.server.local-zone", "homelab.dns.enable")
			case "docker01":
				want = append(want, "virtualisation.docker.daemon.settings.live-restore", "users.groups.docker.members")
			case "template":
				want = append(want, "proxmox.filenameSuffix", "virtualisation.diskSize", "boot.loader.timeout")
			}
			for _, w := range want {
				if !slices.Contains(c.Walked, w) {
					t.Errorf("nixosConfigurations.%s: %s was not among the values checked (%d walked)", m, w, len(c.Walked))
				}
			}
		})
	}
}

// TestOptionCheckCatchesMistakes: the check fails on a misspelt NixOS or
// own option (also inside a mkIf that is off), and on a value that does not
// fit its NixOS type.
func TestOptionCheckCatchesMistakes(t *testing.T) {
	cases := map[string]struct {
		reason string
		module string
		want   string // in the evaluation error, or a failed path
	}{
		"Fine": {
			reason: "declared NixOS options, an attrsOf-submodule name and freeform settings are accepted",
			module: `{ lib, ... }: { config = lib.mkIf true { services.openssh.enable = true; users.users.alice.isNormalUser = true; services.unbound.settings.server.anything = 1; }; }`,
		},
		"MisspeltService":  {reason: "services.opensh is not a NixOS option", module: `{ services.opensh.enable = true; }`, want: "The option `services.opensh' does not exist"},
		"MisspeltLeaf":     {reason: "a wrong last component is caught too", module: `{ services.openssh.enable = true; services.openssh.PasswordAuth = false; }`, want: "The option `services.openssh.PasswordAuth' does not exist"},
		"MisspeltOwn":      {reason: "our own homelab.* options are declared options too", module: `{ homelab.dns.enabel = true; }`, want: "The option `homelab.dns.enabel' does not exist"},
		"InsideMkIfFalse":  {reason: "a definition under a mkIf that is off still names an option", module: `{ lib, ... }: { config = lib.mkIf false { networking.firewal.enable = true; }; }`, want: "The option `networking.firewal' does not exist"},
		"InsideSubmodule":  {reason: "an unknown option of a submodule entry", module: `{ users.users.alice.isNormal = true; }`, want: "users.users.alice.isNormal' does not exist"},
		"PortOutOfRange":   {reason: "a port above 65535 does not fit types.port", module: `{ networking.firewall.allowedTCPPorts = [ 70000 ]; }`, want: "networking.firewall.allowedTCPPorts"},
		"TimeZoneSpace":    {reason: "time.timeZone refuses spaces (nixos/modules/config/locale.nix)", module: `{ time.timeZone = "Europe Berlin"; }`, want: "time.timeZone"},
		"EnumValue":        {reason: "PermitRootLogin is an enum", module: `{ services.openssh.settings.PermitRootLogin = "sometimes"; }`, want: "services.openssh.settings.PermitRootLogin"},
		"UnitNamePattern":  {reason: "wantedBy takes unit names", module: `{ systemd.services.x.wantedBy = [ "multi-user" ]; }`, want: "systemd.services.x.wantedBy"},
		"StringForInteger": {reason: "virtualisation.diskSize is \"auto\" or a positive integer", module: `{ virtualisation.diskSize = "8192"; }`, want: "virtualisation.diskSize"},
	}
	root := testenv.RepoRoot(t)
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "case.nix")
			if err := os.WriteFile(f, []byte(tc.module), 0o644); err != nil {
				t.Fatal(err)
			}
			nixMods := mods(repoFile(t, "nix/modules/dns-unbound.nix"), repoFile(t, "nix/modules/base.nix"), fmt.Sprintf("(/. + %s)", NixString(f)))
			_ = root
			c, msgs, err := checkMachine(t, nixMods)
			var got []string
			if err != nil {
				got = append(got, err.Error())
			}
			for _, p := range c.Failed {
				got = append(got, p+": "+msgs[p])
			}
			all := strings.Join(got, "\n")
			switch {
			case tc.want == "" && all != "":
				t.Errorf("%s: want no error, got:\n%s", tc.reason, all)
			case tc.want != "" && !strings.Contains(all, tc.want):
				t.Errorf("%s: want an error with %q, got:\n%s", tc.reason, tc.want, all)
			}
		})
	}
}

// TestModulesWorkAlone: each nixosModules.* entry of the flake can be
// imported without the others (and without the flake's machine wiring).
func TestModulesWorkAlone(t *testing.T) {
	for _, m := range []string{"base", "networking-static", "docker-host", "dns-unbound", "monitoring-agent", "nix-gitops", "default"} {
		t.Run(m, func(t *testing.T) {
			c, msgs, err := checkMachine(t, mods(fmt.Sprintf("%s.modules.%s", flakeExpr(t), m)))
			if err != nil {
				t.Fatalf("imported alone, nixosModules.%s does not evaluate: %v", m, err)
			}
			for _, p := range c.Failed {
				t.Errorf("imported alone, nixosModules.%s: %s: %s", m, p, msgs[p])
			}
		})
	}
}

// TestVMTestNodeFitsNixOSOptions: the NixOS VM test's node (nix/tests/agent.nix)
// is a module too, with options of qemu-vm.nix.
func TestVMTestNodeFitsNixOSOptions(t *testing.T) {
	c, msgs, err := checkMachine(t, mods("("+flakeExpr(t)+").vmTestNode"))
	if err != nil {
		t.Fatalf("the VM test's node does not evaluate: %v", err)
	}
	for _, p := range c.Failed {
		t.Errorf("%s: %s", p, msgs[p])
	}
	for _, w := range []string{"virtualisation.memorySize", "systemd.services.make-test-repo.requiredBy", "services.nix-gitops.healthChecks.script"} {
		if !slices.Contains(c.Walked, w) {
			t.Errorf("%s was not among the values checked", w)
		}
	}
}
