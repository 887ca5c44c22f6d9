//go:build vault

package vault_test

// These tests run the official client against a real Vault dev server
// (internal/vaulttest); nothing here is faked.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/vault"
	"github.com/homelab-infra/homelab-infra/internal/vault/bootstrap"
	"github.com/homelab-infra/homelab-infra/internal/vaulttest"
)

// machine is one machine's view of Vault: its folders and its client.
type machine struct {
	t         *testing.T
	srv       *vaulttest.Server
	host      vaulttest.Host
	identity  string // on "disk"
	tokenFile string // on tmpfs
	bootFile  string
	now       func() time.Time
}

func newMachine(t *testing.T, srv *vaulttest.Server, host vaulttest.Host) *machine {
	t.Helper()
	disk := t.TempDir()
	shm, err := os.MkdirTemp("/dev/shm", "vault-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	return &machine{t: t, srv: srv, host: host, identity: filepath.Join(disk, "vault"), tokenFile: filepath.Join(shm, "vault-token"),
		bootFile: filepath.Join(disk, "bootstrap.json"), now: time.Now}
}

// client is the agent starting: a new process with the same folders.
func (m *machine) client() *vault.Client {
	m.t.Helper()
	c, err := vault.New(vault.Config{Address: m.srv.Addr, RoleID: m.host.RoleID, IdentityDir: m.identity,
		TokenFile: m.tokenFile, BootstrapFile: m.bootFile, Now: func() time.Time { return m.now() }})
	if err != nil {
		m.t.Fatal(err)
	}
	return c
}

// boot writes the first-boot file as cloud-init would.
func (m *machine) boot(role, token string, expires time.Time) {
	m.t.Helper()
	b, err := bootstrap.Marshal(bootstrap.File{Role: role, WrappingToken: token, Expires: expires})
	if err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(m.bootFile, b, 0o600); err != nil {
		m.t.Fatal(err)
	}
}

func lab(t *testing.T) (*vaulttest.Server, vaulttest.Host) {
	t.Helper()
	srv := vaulttest.Start(t)
	srv.Lab(t)
	h := srv.AddHost(t, "dns01", vaulttest.HostOptions{})
	srv.PutKV(t, "hosts/dns01/tsig", map[string]any{"key": "tsig-secret-1", "algo": "hmac-sha256"})
	return srv, h
}

func login(t *testing.T, c *vault.Client, want string) {
	t.Helper()
	info, err := c.Login(context.Background())
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if info.How != want {
		t.Errorf("login: got the token by %q, want %q", info.How, want)
	}
}

func TestVaultFirstBootAndReboot(t *testing.T) {
	srv, h := lab(t)
	m := newMachine(t, srv, h)
	m.boot("dns01", srv.WrappedSecretID(t, "dns01", 5*time.Minute), time.Now().Add(5*time.Minute))

	c := m.client()
	login(t, c, "login")
	if c.Stats.Unwraps != 1 || c.Stats.Logins != 1 {
		t.Errorf("first boot: %+v, want one unwrap and one login", c.Stats)
	}
	if _, err := os.Stat(m.bootFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the used bootstrap file is still there: %v", err)
	}
	for p, want := range map[string]os.FileMode{m.identity: 0o700 | os.ModeDir, filepath.Join(m.identity, "secret-id"): 0o600, m.tokenFile: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if fi.Mode() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode(), want)
		}
	}
	v, err := c.ReadKV(context.Background(), "secret/hosts/dns01/tsig", "key")
	if err != nil || string(v.Value) != "tsig-secret-1" || v.Version != 1 {
		t.Fatalf("ReadKV = %q v%d, %v", v.Value, v.Version, err)
	}

	// The agent runs again (timer): the cached token is reused, no login.
	c = m.client()
	login(t, c, "cached")
	if _, err := c.ReadKV(context.Background(), "secret/hosts/dns01/tsig", "key"); err != nil {
		t.Fatal(err)
	}
	if c.Stats.Logins != 0 {
		t.Errorf("a second run with a valid cached token logged in %d times", c.Stats.Logins)
	}

	// Reboot: tmpfs is empty; the kept secret_id logs in again, no new
	// wrapping token needed.
	if err := os.Remove(m.tokenFile); err != nil {
		t.Fatal(err)
	}
	c = m.client()
	login(t, c, "login")
	if c.Stats.Unwraps != 0 {
		t.Errorf("after a reboot the client unwrapped again: %+v", c.Stats)
	}
}

func TestVaultWrappingTokenRefused(t *testing.T) {
	srv, h := lab(t)
	other := srv.AddHost(t, "docker01", vaulttest.HostOptions{})
	_ = other
	cases := map[string]struct {
		reason string
		token  func(t *testing.T) (tok string, expires time.Time)
		want   []string
		// stillValid: the token must not have been used up.
		stillValid bool
	}{
		"AlreadyUnwrapped": {
			reason: "someone unwrapped the token before the machine: Vault's tamper signal, named as such",
			token: func(t *testing.T) (string, time.Time) {
				tok := srv.WrappedSecretID(t, "dns01", 5*time.Minute)
				thief, err := vaulttest.NewClient(srv.Addr, tok)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := thief.Logical().Unwrap(""); err != nil {
					t.Fatalf("the thief's unwrap: %v", err)
				}
				return tok, time.Now().Add(5 * time.Minute)
			},
			want: []string{"already unwrapped by someone else", "tamper signal", "secret-id-accessor/destroy", "labctl secrets bootstrap"},
		},
		"Expired": {
			reason: "a token past its TTL is refused, and the message says it expired, not that it was stolen",
			token: func(t *testing.T) (string, time.Time) {
				tok := srv.WrappedSecretID(t, "dns01", time.Second)
				time.Sleep(2500 * time.Millisecond) // Vault revokes it at its TTL
				return tok, time.Now().Add(-time.Second)
			},
			want: []string{"expired at", "labctl secrets bootstrap", "--ttl"},
		},
		"WrongRole": {
			reason: "a token that wraps another role's secret_id is refused before unwrapping, so its machine can still use it",
			token: func(t *testing.T) (string, time.Time) {
				return srv.WrappedSecretID(t, "docker01", 5*time.Minute), time.Now().Add(5 * time.Minute)
			},
			want:       []string{`"auth/approle/role/docker01/secret-id"`, `not "auth/approle/role/dns01/secret-id"`, "not unwrapped"},
			stillValid: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			m := newMachine(t, srv, h)
			tok, exp := tc.token(t)
			m.boot("dns01", tok, exp)
			_, err := m.client().Login(context.Background())
			if vault.KindOf(err) != vault.Identity {
				t.Fatalf("%s\nLogin: err = %v (kind %v), want an identity error", tc.reason, err, vault.KindOf(err))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s\nthe error does not say %q:\n%v", tc.reason, w, err)
				}
			}
			if strings.Contains(err.Error(), tok) {
				t.Errorf("the error shows the wrapping token")
			}
			if _, err := os.Stat(filepath.Join(m.identity, "secret-id")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused token left a secret-id behind")
			}
			if tc.stillValid {
				if _, err := srv.Root.Logical().Write("sys/wrapping/lookup", map[string]any{"token": tok}); err != nil {
					t.Errorf("%s\nthe refused token is no longer valid: %v", tc.reason, err)
				}
			}
		})
	}
}

func TestVaultTokenRenewalAndMaxTTL(t *testing.T) {
	srv := vaulttest.Start(t)
	srv.Lab(t)
	// A max TTL equal to the TTL: once two thirds of it have passed, a
	// renewal cannot extend the token by a third of its TTL, so a new login
	// is due.
	h := srv.AddHost(t, "dns01", vaulttest.HostOptions{TokenTTL: 9 * time.Second, TokenMaxTTL: 9 * time.Second})
	m := newMachine(t, srv, h)
	m.boot("dns01", srv.WrappedSecretID(t, "dns01", time.Minute), time.Time{})
	c := m.client()
	login(t, c, "login")
	login(t, c, "cached")
	time.Sleep(6500 * time.Millisecond) // less than a third of the TTL left
	login(t, c, "login")
	if c.Stats.Renewals != 1 || c.Stats.Logins != 2 {
		t.Errorf("near the max TTL: %+v, want one renewal tried, then a second login", c.Stats)
	}

	// With room below the max TTL, a renewal is enough.
	h2 := srv.AddHost(t, "web01", vaulttest.HostOptions{TokenTTL: 6 * time.Second, TokenMaxTTL: time.Hour})
	m2 := newMachine(t, srv, h2)
	m2.boot("web01", srv.WrappedSecretID(t, "web01", time.Minute), time.Time{})
	c2 := m2.client()
	login(t, c2, "login")
	time.Sleep(4500 * time.Millisecond)
	login(t, c2, "renewed")
	login(t, c2, "cached")
	if c2.Stats.Logins != 1 {
		t.Errorf("a renewable token was replaced by a login: %+v", c2.Stats)
	}
}

func TestVaultRevokedTokenLogsInAgain(t *testing.T) {
	srv, h := lab(t)
	m := newMachine(t, srv, h)
	m.boot("dns01", srv.WrappedSecretID(t, "dns01", time.Minute), time.Time{})
	c := m.client()
	info, err := c.Login(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The operator revokes the machine's token; the next run reads the
	// cached token from tmpfs, is refused, finds the token dead and logs in.
	srv.Write(t, "auth/token/revoke-accessor", map[string]any{"accessor": info.Accessor})
	c = m.client()
	v, err := c.ReadKV(context.Background(), "secret/hosts/dns01/tsig", "key")
	if err != nil || string(v.Value) != "tsig-secret-1" {
		t.Fatalf("ReadKV after a revocation = %q, %v", v.Value, err)
	}
	if c.Stats.Logins != 1 {
		t.Errorf("after the revocation: %+v, want exactly one new login", c.Stats)
	}
}

func TestVaultReadErrors(t *testing.T) {
	srv, h := lab(t)
	srv.PutKV(t, "hosts/docker01/registry", map[string]any{"password": "not-for-dns01"})
	m := newMachine(t, srv, h)
	m.boot("dns01", srv.WrappedSecretID(t, "dns01", time.Minute), time.Time{})
	c := m.client()
	cases := map[string]struct {
		reason      string
		path, field string
		kind        vault.Kind
		want        []string
	}{
		"Denied": {
			reason: "a path outside the machine's policy: the error names the path and the policy line to add",
			path:   "secret/hosts/docker01/registry", field: "password", kind: vault.Denied,
			want: []string{"secret/hosts/docker01/registry", `path "secret/data/hosts/docker01/registry"`, "policy"},
		},
		"MissingPath": {
			reason: "nothing at the path: named, with how to write it",
			path:   "secret/hosts/dns01/nope", field: "key", kind: vault.NotFound,
			want: []string{"no KV v2 secret at secret/hosts/dns01/nope", "vault kv put"},
		},
		"MissingField": {
			reason: "the secret exists but lacks the field: named, with the fields it has (names, never values)",
			path:   "secret/hosts/dns01/tsig", field: "secret", kind: vault.NotFound,
			want: []string{`has no field "secret"`, "algo, key"},
		},
		"BadPath": {
			reason: "a path without a mount",
			path:   "tsig", field: "key", kind: vault.Refused,
			want: []string{"not <mount>/<path>"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := c.ReadKV(context.Background(), tc.path, tc.field)
			if vault.KindOf(err) != tc.kind {
				t.Fatalf("%s\nReadKV: %v (kind %v), want kind %v", tc.reason, err, vault.KindOf(err), tc.kind)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s\nthe error does not say %q:\n%v", tc.reason, w, err)
				}
			}
			for _, v := range []string{"tsig-secret-1", "not-for-dns01", "hmac-sha256"} {
				if strings.Contains(err.Error(), v) {
					t.Errorf("the error shows a value: %v", err)
				}
			}
		})
	}
}

func TestVaultIssueCert(t *testing.T) {
	srv, h := lab(t)
	m := newMachine(t, srv, h)
	m.boot("dns01", srv.WrappedSecretID(t, "dns01", time.Minute), time.Time{})
	c := m.client()
	cert, err := c.IssueCert(context.Background(), vault.CertRequest{Role: "dns01", CommonName: "dns01." + vaulttest.Domain, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := vault.ParseLeaf(cert.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Subject.CommonName != "dns01."+vaulttest.Domain || leaf.NotAfter.Sub(leaf.NotBefore) > time.Hour+time.Minute {
		t.Errorf("issued %q valid %s to %s", leaf.Subject.CommonName, leaf.NotBefore, leaf.NotAfter)
	}
	if !strings.Contains(string(cert.PrivateKey), "PRIVATE KEY") || strings.Count(string(cert.Certificate), "BEGIN CERTIFICATE") != 2 {
		t.Errorf("want a key and a chain of leaf and CA, got %d certificates", strings.Count(string(cert.Certificate), "BEGIN CERTIFICATE"))
	}

	// Another machine's role is outside the policy; a name outside the
	// role's allowed domains is refused by the role.
	_, err = c.IssueCert(context.Background(), vault.CertRequest{Role: "docker01", CommonName: "docker01." + vaulttest.Domain})
	if vault.KindOf(err) != vault.Denied || !strings.Contains(err.Error(), "pki/issue/docker01") {
		t.Errorf("another machine's PKI role: %v, want denied naming pki/issue/docker01", err)
	}
	_, err = c.IssueCert(context.Background(), vault.CertRequest{Role: "dns01", CommonName: "evil.example.com"})
	if vault.KindOf(err) != vault.Refused || !strings.Contains(err.Error(), "evil.example.com") {
		t.Errorf("a name the role does not allow: %v, want refused naming it", err)
	}
}

func TestVaultUnreachable(t *testing.T) {
	srv, h := lab(t)
	m := newMachine(t, srv, h)
	m.srv = &vaulttest.Server{Addr: "http://127.0.0.1:1"} // nothing listens there
	m.boot("dns01", "hvs.not-sent-anywhere", time.Time{})
	_, err := m.client().Login(context.Background())
	if !vault.Retryable(err) || !strings.Contains(err.Error(), "cannot reach Vault") {
		t.Fatalf("Login with Vault down: %v, want a retryable error saying Vault cannot be reached", err)
	}
	if _, serr := os.Stat(m.bootFile); serr != nil {
		t.Errorf("a failed attempt must keep the bootstrap file for the next one: %v", serr)
	}
}
