package cloudinit_test

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/homelab-infra/homelab-infra/internal/cloudinit"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/vault/bootstrap"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestRenderGolden pins the user-data byte for byte: the VM test boots it.
func TestRenderGolden(t *testing.T) {
	got, err := cloudinit.Render(config())
	if err != nil {
		t.Fatal(err)
	}
	testenv.Golden(t, filepath.Join("testdata", "dns01.user-data.golden"), got, *update)
	got, err = cloudinit.Render(vaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	testenv.Golden(t, filepath.Join("testdata", "dns01-vault.user-data.golden"), got, *update)
}

// parse reads user-data back with a YAML parser.
func parse(t testing.TB, ud []byte) map[string]any {
	t.Helper()
	m := map[string]any{}
	if err := yaml.Unmarshal(ud, &m); err != nil {
		t.Fatalf("user-data is not YAML: %v\n%s", err, ud)
	}
	return m
}

// want is the document Render must produce for c, as a YAML parser reads it:
// the bootstrap contract between cloud-init and nix-gitops-apply.service.
func want(c cloudinit.Config) map[string]any {
	keys := make([]any, len(c.Keys))
	for i, k := range c.Keys {
		keys[i] = k
	}
	m := map[string]any{
		"hostname":                  c.Hostname,
		"prefer_fqdn_over_hostname": false,
		"manage_etc_hosts":          true,
		"users": []any{map[string]any{
			"name": c.AdminUser, "gecos": "homelab-infra admin", "sudo": "ALL=(ALL) NOPASSWD:ALL",
			"lock_passwd": true, "ssh_authorized_keys": keys,
		}},
		"ssh_pwauth":   false,
		"disable_root": true,
		"write_files": []any{map[string]any{
			"path": cloudinit.FlakeTargetPath, "content": c.FlakeRef + "\n", "owner": "root:root", "permissions": "0644",
		}},
		"runcmd": []any{[]any{"systemctl", "start", "--no-block", cloudinit.ApplyUnit}},
	}
	if c.FQDN != c.Hostname {
		m["fqdn"] = c.FQDN
	}
	if c.VaultBootstrap != "" {
		m["write_files"] = append(m["write_files"].([]any), map[string]any{
			"path": bootstrap.Path, "content": c.VaultBootstrap, "owner": "root:root", "permissions": "0600",
		})
	}
	return m
}

// TestRenderContract reads the user-data back and compares it with the
// contract, field by field, so a golden refresh cannot quietly drop a part.
func TestRenderContract(t *testing.T) {
	for name, c := range configs() {
		ud, err := cloudinit.Render(c)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(ud), cloudinit.Header+"\n") {
			t.Errorf("%s: user-data must start with %s", name, cloudinit.Header)
		}
		if diff := cmp.Diff(want(c), parse(t, ud)); diff != "" {
			t.Errorf("%s: user-data as parsed (-want, +got):\n%s", name, diff)
		}
	}
}

// FuzzRender renders arbitrary values (the model's validation skipped) and
// reads them back: whatever a claim or Secret holds, the YAML must carry
// exactly it, never a different value or extra structure.
func FuzzRender(f *testing.F) {
	for _, s := range []string{"dns01", "yes", "0644", "a: b", "x #y", "- z", "\"q\"", "'", "ü", "[a]", "{a}", "~", "1e3", "12:30", "a\tb", "*ref", "&a", "!tag", "%x", "@x", "`x", ".0", "-.5", "+1", "0x1f", "0b101", "0o17", "2001-12-14", "=", "<<", ".inf", "_x", "/x: y"} {
		f.Add(s, s, s)
	}
	f.Fuzz(func(t *testing.T, host, key, ref string) {
		c := cloudinit.Config{Hostname: host, FQDN: host + ".lab", AdminUser: host, Keys: []string{key}, FlakeRef: ref}
		ud, err := cloudinit.Render(c)
		if err != nil {
			return // refused (empty or multi-line values): nothing to check
		}
		if diff := cmp.Diff(want(c), parse(t, ud)); diff != "" {
			t.Errorf("values changed on the way through YAML (-want, +got):\n%s\n%s", diff, ud)
		}
	})
}

func TestRenderRejectsIncompleteConfig(t *testing.T) {
	cases := map[string]struct {
		reason string
		mutate func(*cloudinit.Config)
		want   string
	}{
		"NoKeys":    {reason: "a user without keys could never log in", mutate: func(c *cloudinit.Config) { c.Keys = nil }, want: "authorized keys"},
		"NoFlake":   {reason: "the agent needs a flake ref", mutate: func(c *cloudinit.Config) { c.FlakeRef = "" }, want: "flake ref"},
		"NoHost":    {reason: "the host name is required", mutate: func(c *cloudinit.Config) { c.Hostname = "" }, want: "hostname"},
		"MultiLine": {reason: "/etc/nix-flake-target holds one line", mutate: func(c *cloudinit.Config) { c.FlakeRef += "\nrm -rf /" }, want: "one line"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := config()
			tc.mutate(&c)
			_, err := cloudinit.Render(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: want an error mentioning %q, got %v", tc.reason, tc.want, err)
			}
		})
	}
}
