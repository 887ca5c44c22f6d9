package machine

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Resolved is a valid Machine with the site defaults applied: everything the
// composer needs, with no further lookups.
type Resolved struct {
	// Spec with defaults filled in (domain, proxmox.*, nix.flakeRef).
	Spec
	Class Class
	Image Image
	// FQDN is hostname.domain, or the hostname alone without a domain.
	FQDN string
	// FlakeAttr is the nixosConfigurations attribute after '#'.
	FlakeAttr string
	// IPv4CIDR is ip/prefix-length for a static address ("" for DHCP).
	IPv4CIDR string
	// Tags are role and tags, sorted and unique: the Proxmox tags.
	Tags             []string
	SnippetDatastore string
	CPUType          string
	ProviderConfig   string
	// Keys are the authorized keys, inline or read from the Secret.
	Keys []string
	// DNS are the nameservers: the claim's, or the site's.
	DNS []string
}

// Resolve validates s against in and applies the defaults. keys are the
// authorized keys read from sshAuthorizedKeysSecretRef's Secret, when the claim
// uses one (the caller fetches the Secret; this package does no I/O).
func Resolve(s *Spec, in *Input, secretKeys []string) (*Resolved, error) {
	if errs := Validate(s, in); len(errs) > 0 {
		return nil, errs
	}
	return ResolveValid(s, in, secretKeys)
}

// ResolveValid is Resolve for a spec that Validate(s, in) has already passed
// (the function validates before it asks for a Secret, and need not twice).
func ResolveValid(s *Spec, in *Input, secretKeys []string) (*Resolved, error) {
	r := &Resolved{Spec: *s, Class: in.Classes[s.Class], Image: in.Images[s.Image]}
	d := in.Defaults
	r.Proxmox.Node = or(s.Proxmox.Node, d.Node)
	r.Proxmox.Storage = or(s.Proxmox.Storage, d.Storage)
	r.Proxmox.Bridge = or(s.Proxmox.Bridge, d.Bridge)
	r.Domain = or(s.Domain, d.Domain)
	if r.Nix.FlakeRef == "" {
		r.Nix.FlakeRef = d.FlakeRepo + "#" + s.Hostname
	}
	r.FlakeAttr = r.Nix.FlakeRef[strings.LastIndexByte(r.Nix.FlakeRef, '#')+1:]
	r.FQDN = s.Hostname
	if r.Domain != "" {
		r.FQDN = s.Hostname + "." + r.Domain
	}
	if !s.Network.DHCP {
		p := netip.MustParsePrefix(s.Network.CIDR)
		r.IPv4CIDR = netip.PrefixFrom(netip.MustParseAddr(s.Network.IP), p.Bits()).String()
	}
	r.Tags = Tags(s)
	r.SnippetDatastore = d.SnippetDatastore
	r.CPUType = d.CPUType
	r.ProviderConfig = or(d.ProviderConfigName, "default")
	r.DNS = s.Network.DNS
	if len(r.DNS) == 0 {
		r.DNS = d.DNS
	}

	r.Keys = s.Bootstrap.SSHAuthorizedKeys
	if s.Bootstrap.SSHAuthorizedKeysSecretRef != nil {
		var errs Errors
		r.Keys = nil
		p := "spec.bootstrap.sshAuthorizedKeysSecretRef"
		for i, k := range secretKeys {
			if strings.TrimSpace(k) == "" || strings.HasPrefix(strings.TrimSpace(k), "#") {
				continue
			}
			if msg := checkSSHKey(strings.TrimSpace(k)); msg != "" {
				errs.add(p, nil, "line "+strconv.Itoa(i+1)+" of the Secret's key "+msg)
				continue
			}
			r.Keys = append(r.Keys, strings.TrimSpace(k))
		}
		if len(r.Keys) == 0 && len(errs) == 0 {
			errs.add(p, nil, "names a Secret key with no public keys; put one authorized_keys line per key in it")
		}
		if len(errs) > 0 {
			return nil, errs
		}
	}
	return r, nil
}

// Tags are the Proxmox tags of a machine: its role and its tags, sorted and
// unique (Proxmox sorts tags itself, so an unsorted list would never settle).
func Tags(s *Spec) []string {
	set := map[string]bool{}
	if s.Role != "" {
		set[s.Role] = true
	}
	for _, t := range s.Tags {
		set[t] = true
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
