package secrets

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	const vault = `"vault": {"address": "https://vault.lab.home.arpa:8200", "roleId": "r-1"}`
	cases := map[string]struct {
		reason string
		json   string
		want   map[string]Secret
		errs   []string
	}{
		"Defaults": {
			reason: "paths, owner, group and mode default; a PKI secret gets a certificate and a key file",
			json: `{` + vault + `, "secrets": {
			  "tsig": {"kv": {"path": "secret/hosts/dns01/tsig", "field": "key"}, "restartUnits": ["knot.service"]},
			  "dns-tls": {"pki": {"role": "dns01", "commonName": "dns01.lab.home.arpa"}}}}`,
			want: map[string]Secret{
				"tsig": {KV: &KV{Path: "secret/hosts/dns01/tsig", Field: "key"}, Path: "/run/nix-gitops/secrets/tsig",
					Owner: "root", Group: "root", Mode: "0400", RestartUnits: []string{"knot.service"}},
				"dns-tls": {PKI: &PKI{Mount: "pki", Role: "dns01", CommonName: "dns01.lab.home.arpa"},
					Path: "/run/nix-gitops/secrets/dns-tls.crt", KeyPath: "/run/nix-gitops/secrets/dns-tls.key",
					Owner: "root", Group: "root", Mode: "0400"},
			},
		},
		"UnknownKey": {
			reason: "a value key is not a declaration: refused, so no value can ride along",
			json:   `{` + vault + `, "secrets": {"tsig": {"kv": {"path": "secret/x/y", "field": "k"}, "value": "hunter2"}}}`,
			errs:   []string{`unknown field "value"`},
		},
		"NoVault": {
			reason: "declared secrets need an address and a role_id",
			json:   `{"vault": {}, "secrets": {"tsig": {"kv": {"path": "secret/x/y", "field": "k"}}}}`,
			errs:   []string{"vault.address is empty", "vault.roleId is empty"},
		},
		"Bad": {
			reason: "every mistake is named with its option path",
			json: `{` + vault + `, "secrets": {
			  "both": {"kv": {"path": "secret/x/y", "field": "k"}, "pki": {"role": "r", "commonName": "c"}},
			  "none": {},
			  "nomount": {"kv": {"path": "tsig", "field": ""}},
			  "store": {"kv": {"path": "secret/x/y", "field": "k"}, "path": "/nix/store/abc-secret"},
			  "world": {"kv": {"path": "secret/x/y", "field": "k"}, "path": "/run/a", "mode": "0644"},
			  "dup": {"kv": {"path": "secret/x/y", "field": "k"}, "path": "/run/a"},
			  "unit": {"kv": {"path": "secret/x/y", "field": "k"}, "restartUnits": ["knot"]},
			  "pki": {"pki": {"role": "pki/dns01", "commonName": "", "ttl": "1 day"}}}}`,
			errs: []string{
				"secrets.both: set kv or pki, not both",
				"secrets.none: set kv = { path; field; } or pki",
				`secrets.nomount.kv.path: "tsig" is not <mount>/<path>`,
				"secrets.nomount.kv.field is empty",
				"secrets.store.path: \"/nix/store/abc-secret\" is in the Nix store",
				"secrets.world.mode: 0644 lets every user read",
				`secrets.world.path: "/run/a" is also the file of secrets.dup`,
				`secrets.unit.restartUnits: "knot" is not a unit name`,
				`secrets.pki.pki.role: "pki/dns01"`,
				"secrets.pki.pki.commonName is empty",
				`secrets.pki.pki.ttl: "1 day"`,
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f, err := Parse([]byte(tc.json))
			if len(tc.errs) > 0 {
				if err == nil {
					t.Fatalf("%s\nParse: no error", tc.reason)
				}
				for _, e := range tc.errs {
					if !strings.Contains(err.Error(), e) {
						t.Errorf("%s\nthe error does not say %q:\n%v", tc.reason, e, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("%s\nParse: %v", tc.reason, err)
			}
			if diff := cmp.Diff(tc.want, f.Secrets); diff != "" {
				t.Errorf("%s\n(-want, +got):\n%s", tc.reason, diff)
			}
		})
	}
}
