package cloudinit_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"

	"github.com/homelab-infra/homelab-infra/internal/cloudinit"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// schemaFile is where Debian's cloud-init package keeps its schema.
const schemaFile = "usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json"

// cloudConfigSchema returns cloud-init's own schema-cloud-config-v1.json,
// taken from Debian's cloud-init package (apt-get download + dpkg-deb -x) and
// cached outside the repo. It is never copied into the repo. Under -short
// a missing cache skips; otherwise failing to get it fails the test.
func cloudConfigSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("cannot find a cache folder: %v", err)
		}
		cache = filepath.Join(home, ".cache")
	}
	dir := filepath.Join(cache, "homelab-infra", "cloud-init")
	path := filepath.Join(dir, schemaFile)
	if _, err := os.Stat(path); err != nil {
		if testing.Short() {
			t.Skip("cloud-init's schema is not cached: skipped under -short (make test fetches it)")
		}
		fetchCloudInit(t, dir)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4) // cloud-init's schema declares draft-04
	s, err := c.Compile(path)
	if err != nil {
		t.Fatalf("cannot compile cloud-init's schema %s: %v", path, err)
	}
	return s
}

func fetchCloudInit(t *testing.T, dir string) {
	t.Helper()
	aptGet := testenv.LookPath(t, "apt-get")
	dpkgDeb := testenv.LookPath(t, "dpkg-deb")
	tmp := t.TempDir()
	download := func() error {
		cmd := exec.Command(aptGet, "download", "cloud-init")
		cmd.Dir = tmp
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("apt-get download cloud-init: %v\n%s", err, out)
		}
		return err
	}
	if download() != nil {
		// A fresh machine may have no package lists yet.
		if out, err := exec.Command(aptGet, "update", "-qq").CombinedOutput(); err != nil {
			t.Fatalf("cannot update the package lists to fetch cloud-init: %v\n%s", err, out)
		}
		if err := download(); err != nil {
			t.Fatalf("cannot download Debian's cloud-init package for its schema: %v", err)
		}
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "cloud-init_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("want one cloud-init .deb in %s, got %v", tmp, debs)
	}
	x := filepath.Join(tmp, "x")
	if out, err := exec.Command(dpkgDeb, "-x", debs[0], x).CombinedOutput(); err != nil {
		t.Fatalf("cannot unpack %s: %v\n%s", debs[0], err, out)
	}
	b, err := os.ReadFile(filepath.Join(x, schemaFile))
	if err != nil {
		t.Fatalf("the cloud-init package has no schema: %v", err)
	}
	dst := filepath.Join(dir, schemaFile)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	// Write then rename, so a parallel test never reads half a file.
	if err := os.WriteFile(dst+".tmp", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dst+".tmp", dst); err != nil {
		t.Fatal(err)
	}
}

// validate checks user-data the way `cloud-init schema` does: the header,
// then the YAML body against the JSON schema.
func validate(s *jsonschema.Schema, userData []byte) error {
	first, _, _ := bytes.Cut(userData, []byte("\n"))
	if string(first) != cloudinit.Header {
		return &headerError{got: string(first)}
	}
	j, err := yaml.YAMLToJSON(userData)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

type headerError struct{ got string }

func (e *headerError) Error() string {
	return "the first line must be " + cloudinit.Header + ", got " + e.got
}

func config() cloudinit.Config {
	return cloudinit.Config{
		Hostname:  "dns01",
		FQDN:      "dns01.lab.home.arpa",
		AdminUser: "ops",
		Keys: []string{
			"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAFLJ6VeZ/nBqc9gC5W59y5uJxq2icS504scLzx64ilF ops@workstation",
			"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAFLJ6VeZ/nBqc9gC5W59y5uJxq2icS504scLzx64ilG second key: with colon",
		},
		FlakeRef: "git+https://git.lab.home.arpa/homelab-infra?ref=main#dns01",
	}
}

// configs are the shapes of user-data: with a domain (fqdn set) and without,
// and with a first Vault identity.
func configs() map[string]cloudinit.Config {
	noDomain := config()
	noDomain.FQDN = noDomain.Hostname
	return map[string]cloudinit.Config{"fqdn": config(), "no-domain": noDomain, "vault": vaultConfig()}
}

// vaultConfig is dns01 with secrets: the first-boot Vault file as the
// function renders it (a made-up wrapping token).
func vaultConfig() cloudinit.Config {
	c := config()
	c.VaultBootstrap = `{"role":"dns01","wrappingToken":"hvs.CAESIJ0-made-up","expires":"2026-12-01T21:00:00Z"}`
	return c
}

// TestUserDataMatchesCloudInitSchema validates rendered user-data (with and
// without a domain) against cloud-init's own schema.
func TestUserDataMatchesCloudInitSchema(t *testing.T) {
	s := cloudConfigSchema(t)
	for name, c := range configs() {
		ud, err := cloudinit.Render(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate(s, ud); err != nil {
			t.Errorf("%s: rendered user-data fails cloud-init's schema: %v\n%s", name, err, ud)
		}
	}
}

// TestSchemaCheckCanFail feeds deliberately broken user-data to the same
// check: each must fail, which proves the check above can.
func TestSchemaCheckCanFail(t *testing.T) {
	s := cloudConfigSchema(t)
	good, err := cloudinit.Render(config())
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		reason string
		broken string
	}{
		"LockPasswdString":  {reason: "lock_passwd must be a boolean", broken: strings.Replace(string(good), "lock_passwd: true", `lock_passwd: "yes"`, 1)},
		"PermissionsNumber": {reason: "write_files permissions must be a string", broken: strings.Replace(string(good), `permissions: "0644"`, "permissions: 420", 1)},
		"UnknownUserKey":    {reason: "users[] allows no unknown keys", broken: strings.Replace(string(good), "lock_passwd: true", "lock_passwd: true\n    sudoers: ALL", 1)},
		"WriteFileNoPath":   {reason: "write_files[] requires path", broken: strings.Replace(string(good), "  - path: /etc/nix-flake-target\n    content:", "  - content:", 1)},
		"RuncmdNotAList":    {reason: "runcmd must be a list", broken: string(good[:bytes.Index(good, []byte("runcmd:"))]) + "runcmd: 42\n"},
		"NoHeader":          {reason: "the #cloud-config header is required", broken: strings.TrimPrefix(string(good), cloudinit.Header+"\n")},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if tc.broken == string(good) {
				t.Fatalf("%s: the mutation did not apply; fix the test", tc.reason)
			}
			if err := validate(s, []byte(tc.broken)); err == nil {
				t.Errorf("%s: broken user-data passed the check:\n%s", tc.reason, tc.broken)
			}
		})
	}
}
