package nixcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/agent/config"
)

// unitDef is what the module defines of one systemd unit (a drop-in over
// the agent's own unit).
type unitDef struct {
	WantedBy         []string          `json:"wantedBy"`
	OverrideStrategy string            `json:"overrideStrategy"`
	RestartIfChanged *bool             `json:"restartIfChanged"`
	StopIfChanged    *bool             `json:"stopIfChanged"`
	Path             []string          `json:"path"`
	Environment      map[string]string `json:"environment"`
	ServiceConfig    map[string]any    `json:"serviceConfig"`
	UnitConfig       map[string]any    `json:"unitConfig"`
}

type moduleEval struct {
	Services         map[string]unitDef `json:"services"`
	Timers           map[string]any     `json:"timers"`
	ConfigJSON       string             `json:"configJSON"`
	ConfigInClosure  bool               `json:"configInClosure"`
	FailedAssertions []string           `json:"failedAssertions"`
}

// evalModule evaluates nix/modules/nix-gitops.nix with modlib's
// evalModules against NixOS's option declarations (testdata/machine.nix),
// with settings, a Nix module.
func evalModule(t *testing.T, settings string) moduleEval {
	t.Helper()
	body := `let
	  cfg = r.eval.config;
	  text = cfg.environment.etc."nix-gitops/config.json".text;
	in {
	  services = builtins.mapAttrs (_: u: { inherit (u) wantedBy overrideStrategy restartIfChanged stopIfChanged path environment serviceConfig unitConfig; }) cfg.systemd.services;
	  timers = builtins.mapAttrs (_: u: { inherit (u) wantedBy overrideStrategy timerConfig; }) cfg.systemd.timers;
	  configJSON = builtins.unsafeDiscardStringContext text;
	  configInClosure = builtins.hasContext text;
	  inherit (r) failedAssertions;
	}`
	var m moduleEval
	ms := mods(repoFile(t, "nix/modules/nix-gitops.nix"), "({ lib, ... }: "+settings+")",
		"{ services.nix-gitops = { enable = true; package = "+fakeAgent+"; }; }")
	if err := evalNixOS(t, ms, body, &m); err != nil {
		t.Fatalf("cannot evaluate the module: %v", err)
	}
	return m
}

func names(paths []string) []string {
	var out []string
	for _, p := range paths {
		_, n, _ := strings.Cut(filepath.Base(p), "-")
		out = append(out, n)
	}
	return out
}

// TestModuleWiring: the nix-gitops NixOS module wires every mode, as NixOS
// evaluates it (modlib's evalModules, NixOS's options declared from its
// published option data):
// the daemon with its stop timeout and kill mode, gpg in the path for gpg
// signatures, the proxy settings, public files given as paths copied into
// the closure, sshd in the gate only when it runs as a service, hardening
// that leaves root's builds working, and config.json the agent accepts.
func TestModuleWiring(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "allowed_signers")
	if err := os.WriteFile(keys, []byte("release@example.invalid ssh-ed25519 AAAA\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		reason   string
		settings string
		check    func(t *testing.T, m moduleEval, c config.Config)
	}{
		"Defaults": {
			reason:   "one-shot unit only; sshd, a service, in the gate; nothing that breaks root's builds",
			settings: `{ services.openssh.enable = true; }`,
			check: func(t *testing.T, m moduleEval, c config.Config) {
				u, ok := m.Services["nix-gitops-apply"]
				if !ok || !slices.Equal(u.WantedBy, []string{"multi-user.target"}) || u.OverrideStrategy != "asDropin" || u.RestartIfChanged == nil || *u.RestartIfChanged {
					t.Errorf("nix-gitops-apply: %+v", u)
				}
				if _, ok := m.Services["nix-gitops"]; ok || len(m.Timers) != 0 {
					t.Errorf("the daemon and the timer are opt-in: services %v, timers %v", m.Services, m.Timers)
				}
				for _, k := range []string{"LockPersonality", "SystemCallArchitectures"} {
					if _, ok := u.ServiceConfig[k]; ok {
						t.Errorf("serviceConfig.%s would break root's builds for other personalities/architectures", k)
					}
				}
				if u.ServiceConfig["KillMode"] != "mixed" || u.ServiceConfig["TimeoutStopSec"] != "15min" {
					t.Errorf("stop: KillMode %v, TimeoutStopSec %v", u.ServiceConfig["KillMode"], u.ServiceConfig["TimeoutStopSec"])
				}
				if got := names(u.Path); !slices.Equal(got, []string{"nix", "git", "openssh", "systemd"}) {
					t.Errorf("path %v", got)
				}
				if !slices.Equal(c.Health.RequiredUnits, []string{"sshd.service"}) {
					t.Errorf("health.requiredUnits %v, want sshd.service", c.Health.RequiredUnits)
				}
			},
		},
		"SocketActivatedSSH": {
			reason:   "sshd started per connection is no unit to check",
			settings: `{ services.openssh = { enable = true; startWhenNeeded = true; }; }`,
			check: func(t *testing.T, m moduleEval, c config.Config) {
				if slices.Contains(c.Health.RequiredUnits, "sshd.service") {
					t.Errorf("health.requiredUnits %v must not hold sshd.service", c.Health.RequiredUnits)
				}
			},
		},
		"NoSSH": {
			reason:   "no sshd, nothing to check",
			settings: `{ }`,
			check: func(t *testing.T, m moduleEval, c config.Config) {
				if len(c.Health.RequiredUnits) != 0 {
					t.Errorf("health.requiredUnits %v", c.Health.RequiredUnits)
				}
			},
		},
		"Daemon": {
			reason: "daemon.enable: the daemon unit with the same wiring, its stop timeout and kill mode; drift, reboot and floor settings",
			settings: `{ services.nix-gitops = { daemon.enable = true; stopTimeout = "20min"; onDrift = "report";
			  reboot = { allow = "window"; window = { lower = "01:00"; upper = "05:00"; }; };
			  floorCommit = "0123456789abcdef0123456789abcdef01234567"; }; }`,
			check: func(t *testing.T, m moduleEval, c config.Config) {
				u, ok := m.Services["nix-gitops"]
				if !ok || !slices.Equal(u.WantedBy, []string{"multi-user.target"}) || u.OverrideStrategy != "asDropin" {
					t.Fatalf("nix-gitops.service: %+v (present %v)", u, ok)
				}
				if u.ServiceConfig["KillMode"] != "mixed" || u.ServiceConfig["TimeoutStopSec"] != "20min" || u.StopIfChanged == nil || *u.StopIfChanged {
					t.Errorf("daemon stop wiring: %+v", u)
				}
				if c.OnDrift != "report" || c.Reboot.Allow != "window" || c.Reboot.Window.Lower != "01:00" || c.FloorCommit == "" {
					t.Errorf("config: onDrift %q, reboot %+v, floor %q", c.OnDrift, c.Reboot, c.FloorCommit)
				}
			},
		},
		"GPG": {
			reason:   "gpg signatures need gpg in the path",
			settings: `{ services.nix-gitops = { allowedSigners = "/etc/keys.asc"; verifyMode = "gpg"; verifyAllCommits = true; }; }`,
			check: func(t *testing.T, m moduleEval, c config.Config) {
				if !slices.Contains(names(m.Services["nix-gitops-apply"].Path), "gnupg") {
					t.Errorf("path %v lacks gnupg", m.Services["nix-gitops-apply"].Path)
				}
				if c.Verify.Mode != "gpg" || !c.Verify.AllCommits {
					t.Errorf("verify %+v", c.Verify)
				}
			},
		},
		"SSHSigners": {
			reason:   "ssh signatures need no gpg",
			settings: `{ services.nix-gitops = { allowedSigners = "/etc/allowed"; verifyMode = "ssh"; }; }`,
			check: func(t *testing.T, m moduleEval, c config.Config) {
				if slices.Contains(names(m.Services["nix-gitops-apply"].Path), "gnupg") {
					t.Errorf("path %v has gnupg without gpg signatures", m.Services["nix-gitops-apply"].Path)
				}
			},
		},
		"Proxy": {
			reason:   "the agent's git and nix reach the remote through the machine's proxy",
			settings: `{ networking.proxy.envVars = { https_proxy = "http://proxy.lab:3128"; no_proxy = "localhost"; }; services.nix-gitops.daemon.enable = true; }`,
			check: func(t *testing.T, m moduleEval, c config.Config) {
				for _, n := range []string{"nix-gitops-apply", "nix-gitops"} {
					if m.Services[n].Environment["https_proxy"] != "http://proxy.lab:3128" {
						t.Errorf("%s environment %v lacks the proxy", n, m.Services[n].Environment)
					}
				}
			},
		},
		"PublicFilesAsPaths": {
			reason: "allowedSigners and sshKnownHosts given as Nix paths are copied into the store and are part of the closure",
			settings: fmt.Sprintf(`{ services.nix-gitops = { allowedSigners = /. + %s; sshKnownHosts = /. + %s; deployKeyFile = "/run/keys/deploy"; }; }`,
				NixString(keys), NixString(keys)),
			check: func(t *testing.T, m moduleEval, c config.Config) {
				if !strings.HasPrefix(c.Verify.AllowedSigners, "/nix/store/") || !strings.HasPrefix(c.Auth.SSHKnownHosts, "/nix/store/") {
					t.Errorf("allowedSigners %q, sshKnownHosts %q: want store paths, not the checkout's", c.Verify.AllowedSigners, c.Auth.SSHKnownHosts)
				}
				if !m.ConfigInClosure {
					t.Errorf("config.json's text does not refer to the store files: they would not be in the system's closure")
				}
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			m := evalModule(t, tc.settings)
			if len(m.FailedAssertions) > 0 {
				t.Fatalf("%s: assertions failed: %v", tc.reason, m.FailedAssertions)
			}
			c, err := config.Parse([]byte(m.ConfigJSON))
			if err != nil {
				t.Fatalf("%s: the agent refuses config.json %s: %v", tc.reason, m.ConfigJSON, err)
			}
			c.Defaults()
			if err := c.Validate(); err != nil {
				t.Fatalf("%s: %v", tc.reason, err)
			}
			tc.check(t, m, c)
		})
	}
	m := evalModule(t, `{ services.nix-gitops = { daemon.enable = true; timer.enable = true; }; }`)
	if len(m.FailedAssertions) != 1 || !strings.Contains(m.FailedAssertions[0], "choose one") {
		t.Errorf("daemon and timer together: assertions %v, want the one naming both", m.FailedAssertions)
	}
}
