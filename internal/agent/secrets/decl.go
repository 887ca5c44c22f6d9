// Package secrets is nix-gitops's secrets stage (design D7): it reads the
// secrets a system's Nix config declares (etc/nix-gitops/secrets.json in its
// toplevel, written by nix/modules/nix-gitops-secrets.nix), fetches every one
// from Vault (a KV v2 field, or a certificate and key issued by a PKI role),
// writes them atomically to tmpfs with their owner, group and mode, and
// restarts, once, exactly the units that declared a secret whose value
// changed.
//
// The declarations hold references only (a KV path and field, a PKI role),
// never a value, so they may live in the Nix store.
package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/vault"
	"github.com/homelab-infra/homelab-infra/internal/vault/bootstrap"
)

// Where things are by default.
const (
	// InToplevel is the declarations file inside a system's toplevel (its
	// /etc/nix-gitops/secrets.json once active).
	InToplevel = "etc/nix-gitops/secrets.json"
	// Dir is the tmpfs folder secrets go to unless a path is given.
	Dir = "/run/nix-gitops/secrets"
	// TokenFile caches the Vault token, on tmpfs.
	TokenFile = "/run/nix-gitops/vault-token"
)

// File is the declarations file.
type File struct {
	Vault   Vault             `json:"vault"`
	Secrets map[string]Secret `json:"secrets"`
}

// Vault is how the machine reaches Vault (services.nix-gitops.vault).
type Vault struct {
	Address   string `json:"address"`
	CAFile    string `json:"caFile,omitempty"`
	RoleID    string `json:"roleId"`
	AuthMount string `json:"authMount,omitempty"`
	// TokenFile and BootstrapFile move the token cache and the first-boot
	// file (tests; the defaults are TokenFile and bootstrap.Path).
	TokenFile     string `json:"tokenFile,omitempty"`
	BootstrapFile string `json:"bootstrapFile,omitempty"`
}

// Secret is one declared secret (services.nix-gitops.secrets.<name>).
type Secret struct {
	KV  *KV  `json:"kv,omitempty"`
	PKI *PKI `json:"pki,omitempty"`
	// Path is the file [Dir/<name>]; for a PKI secret, the certificate
	// chain [Dir/<name>.crt].
	Path string `json:"path,omitempty"`
	// KeyPath is a PKI secret's private key [Dir/<name>.key].
	KeyPath string `json:"keyPath,omitempty"`
	Owner   string `json:"owner,omitempty"` // [root]
	Group   string `json:"group,omitempty"` // [root]
	// Mode is octal, e.g. "0400" [0400].
	Mode string `json:"mode,omitempty"`
	// RestartUnits are restarted when the value changes.
	RestartUnits []string `json:"restartUnits,omitempty"`
}

// KV is a field of a KV v2 secret: path is <mount>/<path>.
type KV struct {
	Path  string `json:"path"`
	Field string `json:"field"`
}

// PKI is a certificate issued by a PKI role, renewed before it expires.
type PKI struct {
	Mount      string   `json:"mount,omitempty"` // ["pki"]
	Role       string   `json:"role"`
	CommonName string   `json:"commonName"`
	AltNames   []string `json:"altNames,omitempty"`
	IPSANs     []string `json:"ipSans,omitempty"`
	TTL        string   `json:"ttl,omitempty"` // a Go duration ["" : the role's default]
}

// Kind is "kv" or "pki".
func (s Secret) Kind() string {
	if s.PKI != nil {
		return "pki"
	}
	return "kv"
}

// Load reads the declarations file at path. ok is false when there is none
// (a system that declares no secrets).
func Load(path string) (f *File, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cannot read the secrets declarations: %w", err)
	}
	f, err = Parse(b)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	return f, true, nil
}

// ForToplevel loads the declarations of the system at toplevel.
func ForToplevel(toplevel string) (*File, bool, error) {
	return Load(filepath.Join(toplevel, InToplevel))
}

// Parse decodes, defaults and validates a declarations file. Unknown keys
// are errors, so the module and the agent cannot drift apart unnoticed.
func Parse(b []byte) (*File, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("cannot parse the secrets declarations: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("cannot parse the secrets declarations: trailing data after the JSON object")
	}
	f.defaults()
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

func (f *File) defaults() {
	if f.Vault.AuthMount == "" {
		f.Vault.AuthMount = "approle"
	}
	if f.Vault.TokenFile == "" {
		f.Vault.TokenFile = TokenFile
	}
	if f.Vault.BootstrapFile == "" {
		f.Vault.BootstrapFile = bootstrap.Path
	}
	for name, s := range f.Secrets {
		if s.Path == "" {
			s.Path = filepath.Join(Dir, name)
			if s.PKI != nil {
				s.Path += ".crt"
			}
		}
		if s.PKI != nil && s.KeyPath == "" {
			s.KeyPath = filepath.Join(Dir, name+".key")
		}
		if s.PKI != nil && s.PKI.Mount == "" {
			s.PKI.Mount = "pki"
		}
		if s.Owner == "" {
			s.Owner = "root"
		}
		if s.Group == "" {
			s.Group = "root"
		}
		if s.Mode == "" {
			s.Mode = "0400"
		}
		f.Secrets[name] = s
	}
}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	unitRE = regexp.MustCompile(`^[A-Za-z0-9:_.@\\-]+\.(service|socket|target|timer|path|mount)$`)
	userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]*\$?$`)
)

// Validate checks a defaulted file; each error names the option and the fix.
func (f *File) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(f.Secrets) > 0 {
		if f.Vault.Address == "" {
			bad("vault.address is empty: set services.nix-gitops.vault.address to Vault's URL")
		}
		if f.Vault.RoleID == "" {
			bad("vault.roleId is empty: set services.nix-gitops.vault.roleId to the role_id of this machine's AppRole role")
		}
	}
	for _, p := range []struct{ key, v string }{{"vault.caFile", f.Vault.CAFile}, {"vault.tokenFile", f.Vault.TokenFile}, {"vault.bootstrapFile", f.Vault.BootstrapFile}} {
		if p.v != "" && !filepath.IsAbs(p.v) {
			bad("%s: %q is not an absolute path", p.key, p.v)
		}
	}
	owner := map[string]string{} // path → secret that writes it
	for _, name := range Names(f) {
		s := f.Secrets[name]
		key := "secrets." + name
		if !nameRE.MatchString(name) {
			bad("%s: the name may hold only letters, digits, '_', '.' and '-'", key)
		}
		switch {
		case s.KV == nil && s.PKI == nil:
			bad("%s: set kv = { path; field; } or pki = { role; commonName; }", key)
		case s.KV != nil && s.PKI != nil:
			bad("%s: set kv or pki, not both", key)
		case s.KV != nil:
			if _, _, ok := vault.SplitKVPath(s.KV.Path); !ok {
				bad("%s.kv.path: %q is not <mount>/<path>, e.g. secret/hosts/dns01/tsig", key, s.KV.Path)
			}
			if s.KV.Field == "" {
				bad("%s.kv.field is empty: name the field of the KV secret to write", key)
			}
			if s.KeyPath != "" {
				bad("%s.keyPath: only a pki secret has a key file", key)
			}
		case s.PKI != nil:
			if s.PKI.Role == "" || strings.Contains(s.PKI.Role, "/") {
				bad("%s.pki.role: %q: name the PKI role to issue from (its mount goes in pki.mount)", key, s.PKI.Role)
			}
			if s.PKI.CommonName == "" {
				bad("%s.pki.commonName is empty: give the certificate's name, e.g. dns01.lab.home.arpa", key)
			}
			if s.PKI.TTL != "" {
				if d, err := time.ParseDuration(s.PKI.TTL); err != nil || d <= 0 {
					bad("%s.pki.ttl: %q is not a positive Go duration such as \"720h\"", key, s.PKI.TTL)
				}
			}
		}
		for _, p := range []struct{ key, v string }{{key + ".path", s.Path}, {key + ".keyPath", s.KeyPath}} {
			switch {
			case p.v == "":
			case !filepath.IsAbs(p.v) || filepath.Clean(p.v) != p.v:
				bad("%s: %q is not a clean absolute path", p.key, p.v)
			case strings.HasPrefix(p.v, "/nix/store/"):
				bad("%s: %q is in the Nix store, which every user can read: secrets go to tmpfs, e.g. under %s", p.key, p.v, Dir)
			case owner[p.v] != "":
				bad("%s: %q is also the file of secrets.%s; each secret needs its own", p.key, p.v, owner[p.v])
			default:
				owner[p.v] = name
			}
		}
		for _, u := range []struct{ key, v string }{{key + ".owner", s.Owner}, {key + ".group", s.Group}} {
			if !userRE.MatchString(u.v) {
				bad("%s: %q is not a user or group name", u.key, u.v)
			}
		}
		if m, err := strconv.ParseUint(s.Mode, 8, 32); err != nil || m > 0o777 {
			bad("%s.mode: %q is not an octal mode such as \"0400\"", key, s.Mode)
		} else if m&0o007 != 0 {
			bad("%s.mode: %s lets every user read or write the secret: give other users no access (e.g. \"0440\" with a group)", key, s.Mode)
		}
		for _, u := range s.RestartUnits {
			if !unitRE.MatchString(u) {
				bad("%s.restartUnits: %q is not a unit name such as unbound.service", key, u)
			}
		}
	}
	return errors.Join(errs...)
}

// Names lists the declared secrets in a stable order.
func Names(f *File) []string {
	names := make([]string, 0, len(f.Secrets))
	for n := range f.Secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// mode is s.Mode as a FileMode (valid after Validate).
func (s Secret) mode() os.FileMode {
	m, _ := strconv.ParseUint(s.Mode, 8, 32)
	return os.FileMode(m)
}

// ttl is the PKI TTL (valid after Validate).
func (p *PKI) ttl() time.Duration {
	d, _ := time.ParseDuration(p.TTL)
	return d
}
