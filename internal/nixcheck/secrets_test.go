package nixcheck

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/agent/secrets"
)

type secretsModule struct {
	SecretsJSON      *string                        `json:"secretsJSON"`
	FailedAssertions []string                       `json:"failedAssertions"`
	Services         map[string]map[string][]string `json:"services"`
	Activation       map[string]struct {
		Deps []string `json:"deps"`
		Text string   `json:"text"`
	} `json:"activation"`
	Unbound       map[string]any `json:"unbound"`
	SecretOptions []string       `json:"secretOptions"`
	VaultOptions  []string       `json:"vaultOptions"`
}

// evalSecretsModule evaluates nix/modules/nix-gitops.nix,
// nix-gitops-secrets.nix and dns-unbound.nix with modlib against NixOS's
// option declarations (testdata/machine.nix) and the host settings in host
// (a Nix attribute set), and returns what the tests look at.
func evalSecretsModule(t *testing.T, host string) (secretsModule, error) {
	t.Helper()
	body := `let
	  cfg = r.eval.config;
	  # The leaf options below an option, as dotted paths ("<name>" for the
	  # attribute of an attrsOf submodule), through nested submodules.
	  leaves = opt:
	    let sub = removeAttrs (opt.type.getSubOptions opt.loc) [ "_module" ]; in
	    if sub == { } then [ (lib.concatStringsSep "." opt.loc) ]
	    else lib.concatMap leaves (lib.collect lib.isOption sub);
	in {
	  secretsJSON = cfg.environment.etc."nix-gitops/secrets.json".text or null;
	  inherit (r) failedAssertions;
	  services = lib.mapAttrs (_: s: { inherit (s) after wants before; }) cfg.systemd.services;
	  activation = lib.mapAttrs (_: a: { inherit (a) deps text; }) cfg.system.activationScripts;
	  unbound = cfg.services.unbound.settings;
	  secretOptions = leaves r.eval.options.services.nix-gitops.secrets;
	  vaultOptions = lib.concatMap leaves (lib.collect lib.isOption r.eval.options.services.nix-gitops.vault);
	}`
	ms := mods(repoFile(t, "nix/modules/nix-gitops.nix"), repoFile(t, "nix/modules/nix-gitops-secrets.nix"), repoFile(t, "nix/modules/dns-unbound.nix"),
		"{ services.nix-gitops.package = "+fakeAgent+"; }", "("+host+")")
	var m secretsModule
	err := evalNixOS(t, ms, body, &m)
	return m, err
}

const vaultHost = `services.nix-gitops.enable = true;
  services.nix-gitops.vault = { address = "https://vault.lab.home.arpa:8200"; roleId = "5d3e8c2a"; caFile = "/etc/ssl/lab-ca.pem"; };`

// TestSecretsModuleIsTheAgentsDeclarations hands what the NixOS module
// writes to /etc/nix-gitops/secrets.json to the agent's own strict parser,
// and checks the units and the activation snippet around it.
func TestSecretsModuleIsTheAgentsDeclarations(t *testing.T) {
	m, err := evalSecretsModule(t, `{
	  `+vaultHost+`
	  services.nix-gitops.secrets.tsig = { kv = { path = "secret/hosts/dns01/tsig"; field = "key"; }; owner = "knot"; group = "knot"; mode = "0440"; restartUnits = [ "knot.service" ]; };
	  homelab.dns = { enable = true; tls = { enable = true; commonName = "dns01.lab.home.arpa"; pkiRole = "dns01"; }; };
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.FailedAssertions) > 0 {
		t.Fatalf("assertions fail: %v", m.FailedAssertions)
	}
	if m.SecretsJSON == nil {
		t.Fatal("the module writes no /etc/nix-gitops/secrets.json")
	}
	f, err := secrets.Parse([]byte(*m.SecretsJSON))
	if err != nil {
		t.Fatalf("the agent refuses the module's secrets.json: %v\n%s", err, *m.SecretsJSON)
	}
	want := map[string]secrets.Secret{
		"tsig": {KV: &secrets.KV{Path: "secret/hosts/dns01/tsig", Field: "key"}, Path: "/run/nix-gitops/secrets/tsig",
			Owner: "knot", Group: "knot", Mode: "0440", RestartUnits: []string{"knot.service"}},
		"dns-tls": {PKI: &secrets.PKI{Mount: "pki", Role: "dns01", CommonName: "dns01.lab.home.arpa", TTL: "720h"},
			Path: "/run/nix-gitops/secrets/dns-tls.crt", KeyPath: "/run/nix-gitops/secrets/dns-tls.key",
			Owner: "unbound", Group: "unbound", Mode: "0440", RestartUnits: []string{"unbound.service"}},
	}
	if diff := cmp.Diff(want, f.Secrets); diff != "" {
		t.Errorf("declarations (-want, +got):\n%s", diff)
	}
	if f.Vault.Address != "https://vault.lab.home.arpa:8200" || f.Vault.RoleID != "5d3e8c2a" || f.Vault.CAFile != "/etc/ssl/lab-ca.pem" || f.Vault.AuthMount != "approle" {
		t.Errorf("vault settings: %+v", f.Vault)
	}
	for _, u := range []string{"unbound", "knot", "nix-gitops-apply"} {
		if !contains(m.Services[u]["after"], "nix-gitops-secrets.service") {
			t.Errorf("%s.service is not ordered after nix-gitops-secrets.service: %v", u, m.Services[u])
		}
	}
	if diff := cmp.Diff([]string{"unbound.service", "knot.service"}, m.Services["nix-gitops-secrets"]["before"]); diff != "" {
		t.Errorf("nix-gitops-secrets.service before (-want, +got):\n%s", diff)
	}
	act := m.Activation["nix-gitops-secrets"]
	if !contains(act.Deps, "users") || !strings.Contains(act.Text, `secrets --fix-owners --declarations "$systemConfig/etc/nix-gitops/secrets.json"`) {
		t.Errorf("activation snippet: %+v", act)
	}
	server, _ := m.Unbound["server"].(map[string]any)
	if server["tls-service-pem"] != "/run/nix-gitops/secrets/dns-tls.crt" || server["tls-service-key"] != "/run/nix-gitops/secrets/dns-tls.key" ||
		!strings.Contains(fmt.Sprint(server["interface"]), "0.0.0.0@853") || !strings.Contains(fmt.Sprint(server["interface"]), "0.0.0.0 ") {
		t.Errorf("unbound does not serve DNS over TLS with the Vault certificate: %v", server)
	}
}

// TestSecretsModuleTakesNoValue: no option of a secret or of the Vault
// settings can hold a secret value. Each is a reference (where a value
// comes from or goes to), a name, or public (the CA bundle, the role_id).
// A new option fails this test until it is added here, after asking
// whether a value could ride in it.
func TestSecretsModuleTakesNoValue(t *testing.T) {
	m, err := evalSecretsModule(t, `{ }`)
	if err != nil {
		t.Fatal(err)
	}
	p := "services.nix-gitops.secrets.<name>."
	want := []string{p + "group", p + "keyPath", p + "kv.field", p + "kv.path", p + "mode", p + "owner", p + "path",
		p + "pki.altNames", p + "pki.commonName", p + "pki.ipSans", p + "pki.mount", p + "pki.role", p + "pki.ttl", p + "restartUnits"}
	if diff := cmp.Diff(want, m.SecretOptions); diff != "" {
		t.Errorf("the options of a secret changed (-want, +got): check that none can take a value:\n%s", diff)
	}
	v := "services.nix-gitops.vault."
	if diff := cmp.Diff([]string{v + "address", v + "authMount", v + "caFile", v + "roleId"}, m.VaultOptions); diff != "" {
		t.Errorf("the Vault options changed (-want, +got): check that none can take a secret:\n%s", diff)
	}

	// And an attempt to write a value is an evaluation error naming it.
	_, err = evalSecretsModule(t, `{ `+vaultHost+` services.nix-gitops.secrets.tsig = { kv = { path = "secret/x/y"; field = "k"; }; value = "hunter2"; }; }`)
	if err == nil || !strings.Contains(err.Error(), "services.nix-gitops.secrets.tsig.value' does not exist") {
		t.Errorf("a value option: %v, want an error that services.nix-gitops.secrets.tsig.value does not exist", err)
	}
}

// TestSecretsModuleAssertions: declarations that would leak or could not
// work are refused at evaluation, naming the option.
func TestSecretsModuleAssertions(t *testing.T) {
	cases := map[string]struct {
		reason, host, want string
	}{
		"NoVault": {
			reason: "secrets without a Vault to get them from",
			host:   `{ services.nix-gitops.enable = true; services.nix-gitops.secrets.t.kv = { path = "secret/x/y"; field = "k"; }; }`,
			want:   "set services.nix-gitops.vault.address and services.nix-gitops.vault.roleId",
		},
		"Both": {
			reason: "kv and pki at once",
			host:   `{ ` + vaultHost + ` services.nix-gitops.secrets.t = { kv = { path = "secret/x/y"; field = "k"; }; pki = { role = "r"; commonName = "c"; }; }; }`,
			want:   "services.nix-gitops.secrets.t: set exactly one of kv and pki",
		},
		"InStore": {
			reason: "a secret file in the world-readable store",
			host:   `{ ` + vaultHost + ` services.nix-gitops.secrets.t = { kv = { path = "secret/x/y"; field = "k"; }; path = "/nix/store/x-t"; }; }`,
			want:   "services.nix-gitops.secrets.t: path and keyPath must be outside the Nix store",
		},
		"WorldReadable": {
			reason: "other users may not read a secret",
			host:   `{ ` + vaultHost + ` services.nix-gitops.secrets.t = { kv = { path = "secret/x/y"; field = "k"; }; mode = "0644"; }; }`,
			want:   "services.nix-gitops.secrets.t.mode: 0644 gives other users access",
		},
		"TLSWithoutName": {
			reason: "DNS over TLS needs the name to certify and the PKI role",
			host:   `{ ` + vaultHost + ` homelab.dns = { enable = true; tls.enable = true; }; }`,
			want:   "homelab.dns.tls: set commonName",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := evalSecretsModule(t, tc.host)
			if err != nil {
				t.Fatalf("%s: %v", tc.reason, err)
			}
			if !strings.Contains(strings.Join(m.FailedAssertions, "\n"), tc.want) {
				t.Errorf("%s: failed assertions %q, want one saying %q", tc.reason, m.FailedAssertions, tc.want)
			}
		})
	}
}

// TestSecretsUnitNeverWaitsForTheLock: nix-gitops-secrets.service runs at
// boot and whenever multi-user.target is started, which every switch does
// (switch-to-configuration starts every active target and waits for the
// jobs). A switch runs inside an agent run that holds the lock, so the unit
// must not wait for it (secrets --no-wait), and "another run holds the lock"
// (exit 75) must be success, or the switch waits on the target, the target
// on the unit and the unit on the run: a deadlock. The daemon, which takes
// the lock at once, starts after the boot-time fetch.
func TestSecretsUnitNeverWaitsForTheLock(t *testing.T) {
	ms := mods(repoFile(t, "nix/modules/nix-gitops.nix"), repoFile(t, "nix/modules/nix-gitops-secrets.nix"),
		"{ services.nix-gitops.package = "+fakeAgent+"; }",
		"{ "+vaultHost+" services.nix-gitops.daemon.enable = true; services.nix-gitops.secrets.t.kv = { path = \"secret/x/y\"; field = \"k\"; }; }")
	var got struct {
		ExecStart         string   `json:"execStart"`
		SuccessExitStatus string   `json:"successExitStatus"`
		WantedBy          []string `json:"wantedBy"`
		DaemonAfter       []string `json:"daemonAfter"`
	}
	body := `let s = r.eval.config.systemd.services; in {
	  execStart = s.nix-gitops-secrets.serviceConfig.ExecStart;
	  successExitStatus = s.nix-gitops-secrets.serviceConfig.SuccessExitStatus or "";
	  inherit (s.nix-gitops-secrets) wantedBy;
	  daemonAfter = s.nix-gitops.after;
	}`
	if err := evalNixOS(t, ms, body, &got); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(got.ExecStart, "/bin/nix-gitops secrets --no-wait") || !slices.Contains(strings.Fields(got.SuccessExitStatus), "75") {
		t.Errorf("nix-gitops-secrets.service runs %q with SuccessExitStatus %q: started by a switch's multi-user.target, it would wait for the lock of the run that switches", got.ExecStart, got.SuccessExitStatus)
	}
	if !slices.Contains(got.WantedBy, "multi-user.target") || !slices.Contains(got.DaemonAfter, "nix-gitops-secrets.service") {
		t.Errorf("wantedBy %v, the daemon's after %v", got.WantedBy, got.DaemonAfter)
	}
}
