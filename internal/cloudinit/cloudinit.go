// Package cloudinit renders the cloud-init user-data a Machine boots with
// (decision D4): the admin user and its keys, the host name, the flake the VM
// converges to, the machine's first Vault identity when it has secrets (a
// response-wrapped token, never a secret_id), and a kick of the template's
// one-shot apply unit. Network configuration is not here: Proxmox writes it
// from the VM's ipConfig.
package cloudinit

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/homelab-infra/homelab-infra/internal/vault/bootstrap"
)

// Header is the first line cloud-init requires of a #cloud-config document.
const Header = "#cloud-config"

// Paths and units shared with the template: the agent reads the flake target,
// and nix/modules/nix-gitops.nix defines the unit.
const (
	FlakeTargetPath = "/etc/nix-flake-target"
	ApplyUnit       = "nix-gitops-apply.service"
)

// Config is what the user-data needs to know about a machine.
type Config struct {
	Hostname  string
	FQDN      string // hostname alone when the machine has no domain
	AdminUser string
	Keys      []string
	FlakeRef  string
	// VaultBootstrap is the first-boot Vault file (internal/vault/bootstrap:
	// the AppRole role and a response-wrapped, single-use token), written
	// root-only to bootstrap.Path; "" for a machine without secrets.
	VaultBootstrap string
}

// Render returns the user-data for c: a #cloud-config document.
//
// It writes the YAML itself rather than through a YAML library: the document
// has a fixed shape, and this is several times faster (the function renders
// it on every reconcile). Every value from the claim goes through scalar,
// which quotes anything that is not plainly a string; FuzzRender checks that
// a YAML parser reads back exactly the values put in.
func Render(c Config) ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("cannot render user-data: %w", err)
	}
	var b strings.Builder
	b.Grow(1024)
	line := func(s ...string) {
		for _, p := range s {
			b.WriteString(p)
		}
		b.WriteByte('\n')
	}
	line(Header)
	line("hostname: ", scalar(c.Hostname))
	// Without a domain, fqdn would equal hostname: leave it out.
	if c.FQDN != "" && c.FQDN != c.Hostname {
		line("fqdn: ", scalar(c.FQDN))
	}
	line("prefer_fqdn_over_hostname: false")
	line("manage_etc_hosts: true")
	line("users:")
	line("  - name: ", scalar(c.AdminUser))
	line("    gecos: homelab-infra admin")
	// Keys only: the password is locked, sudo needs none.
	line("    sudo: ALL=(ALL) NOPASSWD:ALL")
	line("    lock_passwd: true")
	line("    ssh_authorized_keys:")
	for _, k := range c.Keys {
		line("      - ", scalar(k))
	}
	line("ssh_pwauth: false")
	line("disable_root: true")
	line("write_files:")
	line("  - path: ", FlakeTargetPath)
	line("    content: ", scalar(c.FlakeRef+"\n"))
	line("    owner: root:root")
	line(`    permissions: "0644"`)
	if c.VaultBootstrap != "" {
		// Root only; the agent unwraps the token once and deletes the file.
		line("  - path: ", bootstrap.Path)
		line("    content: ", scalar(c.VaultBootstrap))
		line("    owner: root:root")
		line(`    permissions: "0600"`)
	}
	// --no-block: cloud-init's final stage must not wait for a Nix build
	// (minutes); the unit runs on its own and the agent reports status.
	line("runcmd:")
	line("  - [systemctl, start, --no-block, ", ApplyUnit, "]")
	return []byte(b.String()), nil
}

// scalar renders s as a YAML string: plain when that is unambiguous, else
// double-quoted. Go's quoting escapes every non-printable rune with \x, \u
// or \U forms, all of which YAML's double-quoted style reads back.
func scalar(s string) string {
	if plain(s) {
		return s
	}
	return strconv.Quote(s)
}

// plain reports whether s is safe as a plain YAML scalar. The first character
// is a letter, '_' or '/': every YAML 1.1 number, timestamp, special float
// (.inf, .nan, .5) and the value key "=" start otherwise, so this one rule
// keeps PyYAML (which cloud-init uses) from reading a claim's value as
// anything but a string. Words are separated by single spaces and hold no
// quotes, '#', flow or block indicators; ':' never ends a word or starts one
// (": " and a trailing ':' make a mapping), and parentheses appear only after
// the first word. A loop rather than a regular expression: the function runs
// it on every value of every reconcile.
func plain(s string) bool {
	if s == "" || !(isLetter(s[0]) || s[0] == '_' || s[0] == '/') || yaml11Word(s) {
		return false
	}
	firstWord := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isLetter(c), c >= '0' && c <= '9', strings.IndexByte("_/.@+=?,~%-", c) >= 0:
		case c == ':':
			if s[i-1] == ' ' || i == len(s)-1 || s[i+1] == ' ' {
				return false
			}
		case c == '(' || c == ')':
			if firstWord {
				return false
			}
		case c == ' ':
			if i == len(s)-1 || s[i+1] == ' ' {
				return false
			}
			firstWord = false
		default:
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// yaml11Word reports the words YAML 1.1 reads as booleans or null.
func yaml11Word(s string) bool {
	for _, w := range []string{"y", "n", "yes", "no", "on", "off", "true", "false", "null"} {
		if strings.EqualFold(s, w) {
			return true
		}
	}
	return false
}

func (c Config) check() error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"hostname", c.Hostname}, {"admin user", c.AdminUser}, {"flake ref", c.FlakeRef},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(c.Keys) == 0 {
		missing = append(missing, "authorized keys")
	}
	if len(missing) > 0 {
		return errors.New("missing " + strings.Join(missing, ", "))
	}
	for _, v := range append([]string{c.Hostname, c.FQDN, c.AdminUser, c.FlakeRef, c.VaultBootstrap}, c.Keys...) {
		if !utf8.ValidString(v) {
			return errors.New("values must be valid UTF-8")
		}
	}
	if strings.ContainsAny(c.FlakeRef, "\n\r") {
		return errors.New("the flake ref must be one line")
	}
	return nil
}

// FlakeRefOf reads the flake ref a user-data Render made writes to
// FlakeTargetPath: what the VM booted with, whatever renders now.
func FlakeRefOf(userData string) (string, bool) {
	var doc struct {
		WriteFiles []struct {
			Path    string `json:"path"`
			Content string `json:"content"`
		} `json:"write_files"`
	}
	if err := yaml.Unmarshal([]byte(userData), &doc); err != nil {
		return "", false
	}
	for _, f := range doc.WriteFiles {
		if f.Path == FlakeTargetPath {
			return strings.TrimSuffix(f.Content, "\n"), true
		}
	}
	return "", false
}
