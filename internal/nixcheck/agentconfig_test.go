package nixcheck

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/agent/config"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// moduleAgentConfig evaluates, with real nix, the config.json the
// nix-gitops module writes: nix/lib/agent-config.nix applied to the module's
// option defaults (modlib's evalModules) with overrides laid over them (a
// Nix attribute set).
func moduleAgentConfig(t *testing.T, root, overrides string) []byte {
	t.Helper()
	body := fmt.Sprintf(`let
	  defaults = r.eval.config.services.nix-gitops;
	  cfg = builtins.removeAttrs defaults [ "package" ] // (%s);
	in builtins.toJSON (import (/. + %s) cfg)`, overrides, NixString(filepath.Join(root, "nix/lib/agent-config.nix")))
	var s string
	if err := evalNixOS(t, mods(repoFile(t, "nix/modules/nix-gitops.nix")), body, &s); err != nil {
		t.Fatalf("cannot evaluate the module's config.json: %v", err)
	}
	return []byte(s)
}

// TestModuleConfigIsTheAgentsConfig hands what the NixOS module writes to
// the agent's own strict parser (unknown keys are errors) and validator.
func TestModuleConfigIsTheAgentsConfig(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix-instantiate")
	root := testenv.RepoRoot(t)
	cases := map[string]struct {
		reason    string
		overrides string
		check     func(t *testing.T, c config.Config)
		parseErr  string
	}{
		"Defaults": {
			reason:    "the defaults: flake from /etc/nix-flake-target (sshd joins the gate in the module's config, see TestModuleWiring)",
			overrides: `{ }`,
			check: func(t *testing.T, c config.Config) {
				if c.Flake != "" || c.FlakeTargetFile != "/etc/nix-flake-target" {
					t.Errorf("flake = %q, flakeTargetFile = %q; want the target file", c.Flake, c.FlakeTargetFile)
				}
				if len(c.Health.RequiredUnits) != 0 {
					t.Errorf("health.requiredUnits = %v, want none by default", c.Health.RequiredUnits)
				}
				if c.Verify.Mode != "none" {
					t.Errorf("verify.mode = %q, want none without allowed signers", c.Verify.Mode)
				}
			},
		},
		"EverythingSet": {
			reason: "every option the module maps lands on an agent key the agent accepts",
			overrides: `{
			  flake = "git+ssh://git@git.lab.home.arpa/homelab-infra?ref=main#dns01";
			  stateDir = "/var/lib/other";
			  everyBoot = true;
			  onKernelChange = "boot";
			  allowedSigners = "/etc/nix-gitops/allowed_signers";
			  verifyMode = "ssh";
			  deployKeyFile = "/run/keys/deploy";
			  sshKnownHosts = "/etc/nix-gitops/known_hosts";
			  tokenFile = "/run/keys/token";
			  timeouts = { build = "2h"; };
			  healthChecks = { systemRunning = false; requiredUnits = [ "sshd.service" "unbound.service" ];
			    tcp = [ "127.0.0.1:53" ]; http = [ "http://127.0.0.1:9100/metrics" ];
			    script = "/run/current-system/sw/bin/true"; gitReachable = false; settle = "30s"; };
			  metricsTextfile = "/var/lib/prometheus-node-exporter/textfile/nix-gitops.prom";
			  logFormat = "json";
			  extraSettings = { profile = "/var/lib/test/profile"; retry = { attempts = 3; }; };
			}`,
			check: func(t *testing.T, c config.Config) {
				if c.Verify.Mode != "ssh" || c.Verify.AllowedSigners != "/etc/nix-gitops/allowed_signers" {
					t.Errorf("verify = %+v", c.Verify)
				}
				if c.Auth.SSHKeyFile != "/run/keys/deploy" || c.Auth.TokenFile != "/run/keys/token" {
					t.Errorf("auth = %+v", c.Auth)
				}
				if c.Health.Systemd == nil || *c.Health.Systemd || c.Health.Script == "" || len(c.Health.TCP) != 1 {
					t.Errorf("health = %+v", c.Health)
				}
				if c.Profile != "/var/lib/test/profile" || c.Retry.Attempts != 3 || c.Timeouts.Build.D().String() != "2h0m0s" {
					t.Errorf("extraSettings/timeouts not applied: profile %q, retry %d, build %s", c.Profile, c.Retry.Attempts, c.Timeouts.Build.D())
				}
				if !c.EveryBoot || c.OnKernelChange != "boot" || c.Log.Format != "json" {
					t.Errorf("everyBoot %v, onKernelChange %q, log.format %q", c.EveryBoot, c.OnKernelChange, c.Log.Format)
				}
			},
		},
		"RolloutMode": {
			reason:    "rollout mode and its reboot approval reach the agent",
			overrides: `{ rollout.enable = true; reboot = { allow = "approved"; window = null; }; }`,
			check: func(t *testing.T, c config.Config) {
				if !c.Rollout.Enable || c.Reboot.Allow != "approved" {
					t.Errorf("rollout = %+v, reboot.allow = %q", c.Rollout, c.Reboot.Allow)
				}
			},
		},
		"UnknownKey": {
			reason:    "a key the agent does not know is refused, so this test would catch a drift",
			overrides: `{ extraSettings = { healthz = { units = [ "sshd.service" ]; }; }; }`,
			parseErr:  "healthz",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := moduleAgentConfig(t, root, tc.overrides)
			c, err := config.Parse(b)
			if tc.parseErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.parseErr) {
					t.Fatalf("%s\nconfig.Parse(%s): err = %v, want one naming %q", tc.reason, b, err, tc.parseErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s\nthe agent refuses the module's config.json %s: %v", tc.reason, b, err)
			}
			c.Defaults()
			if err := c.Validate(); err != nil {
				t.Fatalf("%s\nthe agent's validation fails on the module's config.json %s: %v", tc.reason, b, err)
			}
			tc.check(t, c)
		})
	}
}
