package vaulttest

import (
	"fmt"
	"testing"
	"time"
)

// Domain is the DNS domain of the test lab's PKI.
const Domain = "lab.home.arpa"

// Host is what the operator set up in Vault for one machine.
type Host struct {
	Name   string
	RoleID string
	// Policy is the name of the host's policy.
	Policy string
}

// HostOptions tune the AppRole role of a host.
type HostOptions struct {
	// TokenTTL and TokenMaxTTL of the tokens a login gets [1h, 4h].
	TokenTTL, TokenMaxTTL time.Duration
	// SecretIDNumUses and SecretIDTTL of its secret_ids [0 (unlimited), 0 (no expiry)].
	SecretIDNumUses int
	SecretIDTTL     time.Duration
}

// Lab sets up Vault the way docs/README's Secrets section tells an operator
// to: AppRole at auth/approle, KV v2 at secret/ (dev mode mounts it), and a
// PKI at pki/ with a root CA for Domain. Call it once per server.
func (s *Server) Lab(t testing.TB) {
	t.Helper()
	s.Write(t, "sys/auth/approle", map[string]any{"type": "approle"})
	s.Write(t, "sys/mounts/pki", map[string]any{"type": "pki", "config": map[string]any{"max_lease_ttl": "87600h"}})
	s.Write(t, "pki/root/generate/internal", map[string]any{"common_name": "homelab test root CA", "ttl": "87600h"})
}

// AddHost makes a machine's policy (read its KV subtree, issue its PKI
// certificates) and its AppRole role, and returns the role_id.
func (s *Server) AddHost(t testing.TB, name string, o HostOptions) Host {
	t.Helper()
	if o.TokenTTL == 0 {
		o.TokenTTL = time.Hour
	}
	if o.TokenMaxTTL == 0 {
		o.TokenMaxTTL = 4 * time.Hour
	}
	policy := "host-" + name
	hcl := fmt.Sprintf(`path "secret/data/hosts/%[1]s/*" { capabilities = ["read"] }
path "pki/issue/%[1]s" { capabilities = ["update"] }
`, name)
	s.Write(t, "sys/policies/acl/"+policy, map[string]any{"policy": hcl})
	s.Write(t, "pki/roles/"+name, map[string]any{
		"allowed_domains": name + "." + Domain, "allow_bare_domains": true, "allow_subdomains": false,
		"allow_ip_sans": true, "max_ttl": "720h", "key_type": "ec", "key_bits": 256,
	})
	s.Write(t, "auth/approle/role/"+name, map[string]any{
		"token_policies":     policy,
		"token_ttl":          int(o.TokenTTL.Seconds()),
		"token_max_ttl":      int(o.TokenMaxTTL.Seconds()),
		"secret_id_num_uses": o.SecretIDNumUses,
		"secret_id_ttl":      int(o.SecretIDTTL.Seconds()),
	})
	rid := s.Read(t, "auth/approle/role/"+name+"/role-id")
	return Host{Name: name, RoleID: rid.Data["role_id"].(string), Policy: policy}
}

// WrappedSecretID makes a new secret_id for role, response-wrapped with ttl:
// what `labctl secrets bootstrap` does, for tests below labctl.
func (s *Server) WrappedSecretID(t testing.TB, role string, ttl time.Duration) string {
	t.Helper()
	c, err := s.Root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(s.RootToken)
	c.SetWrappingLookupFunc(func(string, string) string { return ttl.String() })
	sec, err := c.Logical().Write("auth/approle/role/"+role+"/secret-id", nil)
	if err != nil {
		t.Fatalf("cannot make a wrapped secret_id for %s: %v", role, err)
	}
	if sec == nil || sec.WrapInfo == nil {
		t.Fatalf("vault returned no wrapping token for %s", role)
	}
	return sec.WrapInfo.Token
}

// PutKV writes data at secret/<path> (KV v2) and returns the new version.
func (s *Server) PutKV(t testing.TB, path string, data map[string]any) int {
	t.Helper()
	sec := s.Write(t, "secret/data/"+path, map[string]any{"data": data})
	v, _ := sec.Data["version"].(interface{ String() string })
	n := 0
	if v != nil {
		fmt.Sscan(v.String(), &n)
	}
	return n
}
