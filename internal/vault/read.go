package vault

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// SplitKVPath splits "secret/hosts/dns01/tsig" into the KV v2 mount (the
// first segment) and the secret's path in it.
func SplitKVPath(p string) (mount, path string, ok bool) {
	mount, path, ok = strings.Cut(strings.Trim(p, "/"), "/")
	return mount, path, ok && mount != "" && path != ""
}

// KVField is one field of a KV v2 secret.
type KVField struct {
	Value   []byte
	Version int
}

// ReadKV reads field of the latest version of the KV v2 secret at p
// (mount/path). Errors name the path and field, never a value.
func (c *Client) ReadKV(ctx context.Context, p, field string) (KVField, error) {
	mount, path, ok := SplitKVPath(p)
	if !ok {
		return KVField{}, fail(Refused, "kv path %q is not <mount>/<path>, e.g. secret/hosts/dns01/tsig", p)
	}
	var out KVField
	err := c.withToken(ctx, func() error {
		rctx, cancel := c.ctx(ctx)
		defer cancel()
		c.Stats.Reads++
		s, err := c.api.KVv2(mount).Get(rctx, path)
		switch {
		case errors.Is(err, api.ErrSecretNotFound):
			return fail(NotFound, "no KV v2 secret at %s (mount %s, path %s): write it (vault kv put -mount=%s %s %s=...) or fix the path", p, mount, path, mount, path, field)
		case err != nil:
			return explainKV(classify("read "+p, err), p, mount, path)
		case s == nil || s.Data == nil:
			return fail(NotFound, "the latest version of %s is deleted or destroyed: write it again", p)
		}
		v, ok := s.Data[field]
		if !ok {
			return fail(NotFound, "%s has no field %q (it has: %s): fix the field or add it to the secret", p, field, fields(s.Data))
		}
		str, ok := v.(string)
		if !ok {
			return fail(Refused, "field %q of %s is a %T, not a string: store the value as a string", field, p, v)
		}
		out = KVField{Value: []byte(str)}
		if s.VersionMetadata != nil {
			out.Version = s.VersionMetadata.Version
		}
		return nil
	})
	return out, err
}

func explainKV(err error, p, mount, path string) error {
	if KindOf(err) == Denied {
		return fail(Denied, "cannot read %s: Vault's policy for this machine's token does not allow read on %s/data/%s; grant it in the machine's policy (path \"%s/data/%s\" { capabilities = [\"read\"] })",
			p, mount, path, mount, path)
	}
	return err
}

func fields(m map[string]any) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	if len(ks) == 0 {
		return "no fields"
	}
	return strings.Join(ks, ", ")
}

// CertRequest asks a PKI role for a certificate.
type CertRequest struct {
	// Mount of the PKI secrets engine ["pki"].
	Mount string
	// Role of the PKI engine to issue from.
	Role       string
	CommonName string
	AltNames   []string
	IPSANs     []string
	TTL        time.Duration
}

// Cert is an issued certificate and its key, PEM-encoded.
type Cert struct {
	// Certificate is the leaf followed by its issuing chain.
	Certificate []byte
	PrivateKey  []byte
	Serial      string
	NotBefore   time.Time
	NotAfter    time.Time
}

// IssueCert issues a certificate and key from a PKI role.
func (c *Client) IssueCert(ctx context.Context, r CertRequest) (Cert, error) {
	if r.Mount == "" {
		r.Mount = "pki"
	}
	path := strings.Trim(r.Mount, "/") + "/issue/" + r.Role
	data := map[string]any{"common_name": r.CommonName, "format": "pem"}
	if len(r.AltNames) > 0 {
		data["alt_names"] = strings.Join(r.AltNames, ",")
	}
	if len(r.IPSANs) > 0 {
		data["ip_sans"] = strings.Join(r.IPSANs, ",")
	}
	if r.TTL > 0 {
		data["ttl"] = r.TTL.String()
	}
	var out Cert
	err := c.withToken(ctx, func() error {
		rctx, cancel := c.ctx(ctx)
		defer cancel()
		c.Stats.Issues++
		s, err := c.api.Logical().WriteWithContext(rctx, path, data)
		if err != nil {
			err = classify("issue a certificate for "+r.CommonName+" from "+path, err)
			if KindOf(err) == Denied {
				return fail(Denied, "cannot issue a certificate from %s: Vault's policy for this machine's token does not allow update on %s; grant it in the machine's policy", path, path)
			}
			return err
		}
		if s == nil {
			return fail(NotFound, "%s returned nothing", path)
		}
		cert, _ := s.Data["certificate"].(string)
		key, _ := s.Data["private_key"].(string)
		if cert == "" || key == "" {
			return fail(Refused, "%s returned no certificate or key", path)
		}
		chain := cert + "\n"
		if ca, ok := s.Data["ca_chain"].([]any); ok && len(ca) > 0 {
			for _, x := range ca {
				if s, ok := x.(string); ok {
					chain += s + "\n"
				}
			}
		} else if ca, _ := s.Data["issuing_ca"].(string); ca != "" {
			chain += ca + "\n"
		}
		leaf, err := ParseLeaf([]byte(chain))
		if err != nil {
			return fail(Refused, "%s returned a certificate that does not parse: %v", path, err)
		}
		sn, _ := s.Data["serial_number"].(string)
		out = Cert{Certificate: []byte(chain), PrivateKey: []byte(key + "\n"), Serial: sn, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}
		return nil
	})
	return out, err
}

// ParseLeaf parses the first certificate of a PEM bundle.
func ParseLeaf(b []byte) (*x509.Certificate, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM certificate")
		}
		if blk.Type == "CERTIFICATE" {
			cert, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("cannot parse the certificate: %w", err)
			}
			return cert, nil
		}
	}
}
