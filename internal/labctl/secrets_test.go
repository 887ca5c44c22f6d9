package labctl_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/labctl"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/vault/bootstrap"
)

// withSecrets gives a claim spec.secrets.
func withSecrets(c map[string]any, role string) map[string]any {
	c["spec"].(map[string]any)["secrets"] = map[string]any{"role": role, "wrappingTokenSecretRef": map[string]any{"name": role + "-vault"}}
	return c
}

// nixRepo is fixtureRepo plus this repo's real nix/modules and
// nix/lib, with hosts given as configuration.nix contents.
func nixRepo(t *testing.T, claims map[string]map[string]any, hosts map[string]string) string {
	t.Helper()
	dst := fixtureRepo(t, claims)
	src := testenv.RepoRoot(t)
	for _, dir := range []string{"nix/modules", "nix/lib"} {
		files, err := os.ReadDir(filepath.Join(src, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			copyFile(t, filepath.Join(src, dir, f.Name()), filepath.Join(dst, dir, f.Name()))
		}
	}
	for h, conf := range hosts {
		write(t, filepath.Join(dst, repo.HostsDir, h, "configuration.nix"), []byte(conf))
	}
	return dst
}

const tlsHost = `{ ... }: {
  homelab.dns = { enable = true; tls = { enable = true; commonName = "dns01.lab.home.arpa"; pkiRole = "dns01"; }; };
  services.nix-gitops.secrets.tsig.kv = { path = "secret/hosts/dns01/tsig"; field = "key"; };
}
`

// TestValidateHostSecrets: a host whose Nix config declares secrets (here
// through the dns module's TLS certificate and one of its own) needs a Vault
// role in its claim; the declarations are evaluated with the real nix over
// the repo's own modules, with modlib (this repo's stand-in of nixpkgs' lib:
// nixpkgs cannot be fetched here) as the --nixpkgs folder.
func TestValidateHostSecrets(t *testing.T) {
	testenv.LookPath(t, "nix-instantiate")
	lib := testenv.ModLib(t)
	cases := map[string]struct {
		reason  string
		claims  map[string]map[string]any
		hosts   map[string]string
		problem string
		note    string
	}{
		"NoRole": {
			reason:  "secrets declared, no spec.secrets: the machine could never log in",
			claims:  map[string]map[string]any{"dns01": claim(t, "dns01", "10.0.10.53", 1053)},
			hosts:   map[string]string{"dns01": tlsHost},
			problem: "crossplane/claims/dns01.yaml: spec.secrets: nix/hosts/dns01 declares secrets (dns-tls, tsig) but the claim names no Vault role",
		},
		"Role": {
			reason: "with spec.secrets it validates",
			claims: map[string]map[string]any{"dns01": withSecrets(claim(t, "dns01", "10.0.10.53", 1053), "dns01")},
			hosts:  map[string]string{"dns01": tlsHost},
		},
		"RoleButNothing": {
			reason: "a role without secrets is only noted",
			claims: map[string]map[string]any{"dns01": withSecrets(claim(t, "dns01", "10.0.10.53", 1053), "dns01")},
			hosts:  map[string]string{"dns01": "{ ... }: { homelab.dns.enable = true; }\n"},
			note:   "spec.secrets is set but nix/hosts/dns01 declares no secrets",
		},
		"TLSOff": {
			reason: "the dns module declares its certificate only with tls on",
			claims: map[string]map[string]any{"dns01": claim(t, "dns01", "10.0.10.53", 1053)},
			hosts:  map[string]string{"dns01": "{ ... }: { homelab.dns.enable = true; }\n"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			// The fixture is no Git repository: edits are TestValidateAgainst's.
			r := labctl.ValidateWith(context.Background(), nixRepo(t, tc.claims, tc.hosts), labctl.ValidateOptions{Nixpkgs: lib, Against: "none"})
			var got []string
			for _, p := range r.Problems {
				got = append(got, p.String())
			}
			all := strings.Join(got, "\n")
			switch {
			case tc.problem == "" && !r.OK():
				t.Errorf("%s: unexpected problems:\n%s", tc.reason, all)
			case tc.problem != "" && !strings.Contains(all, tc.problem):
				t.Errorf("%s: want a problem %q, got:\n%s", tc.reason, tc.problem, all)
			}
			notes := strings.Join(r.Notes, "\n")
			if tc.note != "" && !strings.Contains(notes, tc.note) || tc.note == "" && notes != "" {
				t.Errorf("%s: notes %q, want %q", tc.reason, notes, tc.note)
			}
		})
	}
}

// TestRenderVaultPlaceholder: a claim with spec.secrets renders offline,
// with the first-boot file naming the Secret the token comes from instead
// of any token.
func TestRenderVaultPlaceholder(t *testing.T) {
	c := withSecrets(claim(t, "dns01", "10.0.10.53", 1053), "dns01")
	rs, err := labctl.Render(context.Background(), fixtureRepo(t, map[string]map[string]any{"dns01": c}, "dns01"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ud := rs[0].UserData
	if !strings.Contains(ud, "- path: "+bootstrap.Path) || !strings.Contains(ud, `\"role\":\"dns01\"`) ||
		!strings.Contains(ud, "WRAPPING-TOKEN-FROM-SECRET-infra-machines/dns01-vault/wrapping_token") {
		t.Errorf("the user-data lacks the first-boot file with the placeholder:\n%s", ud)
	}
}
