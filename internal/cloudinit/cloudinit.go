// Package cloudinit renders the cloud-init user-data a Machine boots with
// (decision D4): the admin user and its keys, the host name, the flake the VM
// converges to, and a kick of the template's one-shot apply unit. Network
// configuration is not here: Proxmox writes it from the VM's ipConfig.
package cloudinit

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Header is the first line cloud-init requires of a #cloud-config document.
const Header = "#cloud-config"

// Paths and units the bootstrap contract names (see notes/team.md).
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
}

// userData is the document, field order as a reader expects it.
type userData struct {
	Hostname               string      `yaml:"hostname"`
	FQDN                   string      `yaml:"fqdn,omitempty"`
	PreferFQDNOverHostname bool        `yaml:"prefer_fqdn_over_hostname"`
	ManageEtcHosts         bool        `yaml:"manage_etc_hosts"`
	Users                  []user      `yaml:"users"`
	SSHPasswordAuth        bool        `yaml:"ssh_pwauth"`
	DisableRoot            bool        `yaml:"disable_root"`
	WriteFiles             []writeFile `yaml:"write_files"`
	RunCmd                 [][]string  `yaml:"runcmd"`
}

type user struct {
	Name              string   `yaml:"name"`
	Gecos             string   `yaml:"gecos"`
	Sudo              string   `yaml:"sudo"`
	LockPasswd        bool     `yaml:"lock_passwd"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys"`
}

type writeFile struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content"`
	Owner       string `yaml:"owner"`
	Permissions string `yaml:"permissions"`
}

// Render returns the user-data for c: a #cloud-config document.
func Render(c Config) ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("cannot render user-data: %w", err)
	}
	ud := userData{
		Hostname: c.Hostname,
		// Without a domain, fqdn would equal hostname: leave it out.
		PreferFQDNOverHostname: false,
		ManageEtcHosts:         true,
		Users: []user{{
			Name:  c.AdminUser,
			Gecos: "homelab-infra admin",
			// Keys only: the password is locked, sudo needs none.
			Sudo:              "ALL=(ALL) NOPASSWD:ALL",
			LockPasswd:        true,
			SSHAuthorizedKeys: c.Keys,
		}},
		SSHPasswordAuth: false,
		DisableRoot:     true,
		WriteFiles: []writeFile{{
			Path:        FlakeTargetPath,
			Content:     c.FlakeRef + "\n",
			Owner:       "root:root",
			Permissions: "0644",
		}},
		// --no-block: cloud-init's final stage must not wait for a Nix build
		// (minutes); the unit runs on its own and the agent reports status.
		RunCmd: [][]string{{"systemctl", "start", "--no-block", ApplyUnit}},
	}
	if c.FQDN != c.Hostname {
		ud.FQDN = c.FQDN
	}
	var b bytes.Buffer
	b.WriteString(Header + "\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(ud); err != nil {
		return nil, fmt.Errorf("cannot encode user-data: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("cannot encode user-data: %w", err)
	}
	return b.Bytes(), nil
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
	if strings.ContainsAny(c.FlakeRef, "\n\r") {
		return errors.New("the flake ref must be one line")
	}
	return nil
}
