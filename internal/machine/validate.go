package machine

import (
	"fmt"
	"net/netip"
	"strconv"
	"unicode/utf8"
)

// Validate checks a claim's spec. With in == nil only the rules that need no
// function input run (the same rules the XRD's schema enforces); with an input
// the class and image are checked against it as well, and the flake ref after
// its default applies. Every message names the field and says how to fix it.
func Validate(s *Spec, in *Input) Errors {
	errs := append(Errors{}, s.written...)
	validateNames(&errs, s, in)
	validateNetwork(&errs, &s.Network)
	validateProxmox(&errs, &s.Proxmox)
	validateNix(&errs, s, in)
	validateBootstrap(&errs, &s.Bootstrap)
	validateSecrets(&errs, s.Secrets)
	if in != nil {
		validateAgainstInput(&errs, s, in)
	}
	return errs
}

// validateAgainstInput checks what only the function input can tell: the
// class fits the template, the VM id is not a template's, and the machine
// has nameservers from its claim or the site.
func validateAgainstInput(errs *Errors, s *Spec, in *Input) {
	class, okClass := in.Classes[s.Class]
	img, okImage := in.Images[s.Image]
	if okClass && okImage && class.DiskGiB < img.DiskGiB {
		errs.add("spec.class", s.Class, fmt.Sprintf("has a %d GiB disk, smaller than the %d GiB disk of template %s (input.images.%s.diskGiB), and Proxmox cannot shrink a disk; pick a class with at least %d GiB, or enlarge the class", class.DiskGiB, img.DiskGiB, s.Image, s.Image, img.DiskGiB))
	}
	if id := s.Proxmox.VMID; id != nil {
		for _, name := range sortedKeys(in.Images) {
			if in.Images[name].TemplateVMID == *id {
				errs.add("spec.proxmox.vmId", id, fmt.Sprintf("is the template VM of image %s; the claim would adopt and rewrite the template. Pick a free id", name))
			}
		}
	}
	if len(s.Network.DNS) == 0 && len(in.Defaults.DNS) == 0 {
		errs.add("spec.network.dns", nil, "is required (the Composition's input sets no defaults.dns): without nameservers Proxmox hands the VM its own host's resolv.conf; list the machine's DNS servers, e.g. [10.0.10.1]")
	}
}

func validateNames(errs *Errors, s *Spec, in *Input) {
	switch {
	case s.Class == "":
		errs.add("spec.class", nil, "is required; pick a sizing class"+oneOf(in, true))
	case !labelRE().MatchString(s.Class):
		errs.add("spec.class", s.Class, "is not a valid class name"+oneOf(in, true))
	case in != nil:
		if _, ok := in.Classes[s.Class]; !ok {
			errs.add("spec.class", s.Class, "is not a class of the function input"+oneOf(in, true))
		}
	}

	switch {
	case s.Hostname == "":
		errs.add("spec.hostname", nil, "is required; set the VM's host name, e.g. dns01")
	case len(s.Hostname) > MaxLabelLength || !labelRE().MatchString(s.Hostname):
		errs.add("spec.hostname", s.Hostname, "is not an RFC 1123 label; use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit")
	}

	if s.Domain != "" && (len(s.Domain) > MaxDomainLen || !domainRE().MatchString(s.Domain)) {
		errs.add("spec.domain", s.Domain, "is not a DNS domain; use lower-case labels separated by dots, e.g. lab.home.arpa")
	}

	switch {
	case s.Image == "":
		errs.add("spec.image", nil, "is required; name the template to clone"+oneOf(in, false))
	case len(s.Image) > MaxLabelLength || !imageRE().MatchString(s.Image):
		errs.add("spec.image", s.Image, "is not a valid image name"+oneOf(in, false))
	case in != nil:
		if _, ok := in.Images[s.Image]; !ok {
			errs.add("spec.image", s.Image, "is not an image of the function input"+oneOf(in, false))
		}
	}

	if s.Role != "" && (len(s.Role) > MaxLabelLength || !labelRE().MatchString(s.Role)) {
		errs.add("spec.role", s.Role, "is not a valid role; use an RFC 1123 label such as dns")
	}
	if len(s.Tags) > MaxTags {
		errs.add("spec.tags", nil, fmt.Sprintf("has %d tags; use at most %d", len(s.Tags), MaxTags))
	}
	seen := map[string]bool{}
	for i, t := range s.Tags {
		p := "spec.tags[" + strconv.Itoa(i) + "]"
		switch {
		case len(t) > MaxLabelLength || !tagRE().MatchString(t):
			errs.add(p, t, "is not a valid Proxmox tag; use lower-case letters, digits, '_', '.' and '-'")
		case seen[t]:
			errs.add(p, t, "is a duplicate; list each tag once")
		}
		seen[t] = true
	}
}

// oneOf lists the valid classes (or images) for a message, when known.
func oneOf(in *Input, classes bool) string {
	if in == nil {
		return ""
	}
	if classes {
		return "; use one of: " + in.ClassNames()
	}
	return "; use one of: " + in.ImageNames()
}

func validateNetwork(errs *Errors, n *Network) {
	if n.DHCP {
		for _, f := range []struct{ name, v string }{{"ip", n.IP}, {"cidr", n.CIDR}, {"gateway", n.Gateway}} {
			if f.v != "" {
				errs.add("spec.network."+f.name, f.v, "conflicts with spec.network.dhcp: true; remove ip, cidr and gateway, or set dhcp: false for a static address")
			}
		}
	} else {
		for _, f := range []struct{ name, v string }{{"ip", n.IP}, {"cidr", n.CIDR}, {"gateway", n.Gateway}} {
			if f.v == "" {
				errs.add("spec.network."+f.name, nil, "is required for a static address; set ip, cidr and gateway, or set dhcp: true")
			}
		}
	}

	ip, ipOK := parseAddr(errs, "spec.network.ip", n.IP)
	gw, gwOK := parseAddr(errs, "spec.network.gateway", n.Gateway)
	var prefix netip.Prefix
	prefixOK := false
	if n.CIDR != "" {
		p, err := netip.ParsePrefix(n.CIDR)
		switch {
		case err != nil || !p.Addr().Is4():
			errs.add("spec.network.cidr", n.CIDR, "is not an IPv4 CIDR; write the subnet as address/length, e.g. 10.0.10.0/24")
		case p.Bits() < MinPrefixLen || p.Bits() > MaxPrefixLen:
			errs.add("spec.network.cidr", n.CIDR, fmt.Sprintf("has prefix length /%d; use /%d to /%d so the subnet holds the address and its gateway", p.Bits(), MinPrefixLen, MaxPrefixLen))
		case p.Masked() != p:
			errs.add("spec.network.cidr", n.CIDR, "is not a network address; use "+p.Masked().String())
		default:
			prefix, prefixOK = p, true
		}
	}
	if prefixOK && ipOK {
		switch {
		case !prefix.Contains(ip):
			errs.add("spec.network.ip", n.IP, "is outside spec.network.cidr "+n.CIDR+"; pick an address inside the CIDR or fix the CIDR")
		case ip == prefix.Addr() || ip == broadcast(prefix):
			errs.add("spec.network.ip", n.IP, "is the network or broadcast address of "+n.CIDR+"; pick a host address")
		}
	}
	if prefixOK && gwOK {
		switch {
		case !prefix.Contains(gw):
			errs.add("spec.network.gateway", n.Gateway, "is outside spec.network.cidr "+n.CIDR+"; the gateway must be in the machine's subnet")
		case gw == prefix.Addr() || gw == broadcast(prefix):
			errs.add("spec.network.gateway", n.Gateway, "is the network or broadcast address of "+n.CIDR+"; set the router's address")
		}
	}
	if ipOK && gwOK && ip == gw {
		errs.add("spec.network.gateway", n.Gateway, "is the machine's own address; set the router's address")
	}

	if len(n.DNS) > MaxDNSServers {
		errs.add("spec.network.dns", nil, fmt.Sprintf("lists %d servers; the resolver uses at most %d", len(n.DNS), MaxDNSServers))
	}
	seen := map[string]bool{}
	for i, d := range n.DNS {
		p := "spec.network.dns[" + strconv.Itoa(i) + "]"
		a, err := netip.ParseAddr(d)
		switch {
		case err != nil || !a.Is4():
			errs.add(p, d, "is not an IPv4 address; list DNS servers by address, e.g. 10.0.10.1")
		case seen[d]:
			errs.add(p, d, "is a duplicate; list each server once")
		}
		seen[d] = true
	}
}

// parseAddr parses an optional IPv4 address, reporting a bad one.
func parseAddr(errs *Errors, field, v string) (netip.Addr, bool) {
	if v == "" {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		errs.add(field, v, "is not an IPv4 address; write it as four numbers 0-255, e.g. 10.0.10.53")
		return netip.Addr{}, false
	}
	return a, true
}

func broadcast(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func validateProxmox(errs *Errors, p *Proxmox) {
	if p.Node != "" && (len(p.Node) > MaxLabelLength || !labelRE().MatchString(p.Node)) {
		errs.add("spec.proxmox.node", p.Node, "is not a Proxmox node name; use the node's name as shown in Proxmox, e.g. pve1")
	}
	if p.Storage != "" && (len(p.Storage) > MaxLabelLength || !storageRE().MatchString(p.Storage)) {
		errs.add("spec.proxmox.storage", p.Storage, "is not a Proxmox storage id, e.g. local-lvm")
	}
	if p.Bridge != "" && !bridgeRE().MatchString(p.Bridge) {
		errs.add("spec.proxmox.bridge", p.Bridge, "is not a bridge name; use an interface name of at most 15 characters, e.g. vmbr0")
	}
	if p.VLAN != nil && (*p.VLAN < MinVLAN || *p.VLAN > MaxVLAN) {
		errs.add("spec.proxmox.vlan", p.VLAN, fmt.Sprintf("is out of range; use a VLAN id from %d to %d, or leave vlan out for an untagged port", MinVLAN, MaxVLAN))
	}
	switch {
	case p.VMID == nil:
		errs.add("spec.proxmox.vmId", nil, fmt.Sprintf("is required: it is the VM's id in Proxmox and how a rebuilt management cluster finds the VM again; pick a free id from %d (labctl new picks one)", MinVMID))
	case *p.VMID < MinVMID || *p.VMID > MaxVMID:
		errs.add("spec.proxmox.vmId", p.VMID, fmt.Sprintf("is out of range; Proxmox VM ids run from %d to %d", MinVMID, MaxVMID))
	}
}

func validateNix(errs *Errors, s *Spec, in *Input) {
	ref := s.Nix.FlakeRef
	switch {
	case utf8.RuneCountInString(ref) > MaxFlakeRefLen:
		errs.add("spec.nix.flakeRef", nil, fmt.Sprintf("is longer than %d characters; point at the repository and host, e.g. git+https://git.lab.home.arpa/homelab-infra?ref=main#%s", MaxFlakeRefLen, orExample(s.Hostname)))
	case ref != "":
		// Never echoed: a ref with a token in it must not travel further.
		for _, msg := range checkFlakeRef(ref) {
			errs.add("spec.nix.flakeRef", nil, msg)
		}
	case in != nil && in.Defaults.FlakeRepo == "":
		errs.add("spec.nix.flakeRef", nil, "is required (the function input sets no defaults.flakeRepo); use e.g. git+https://git.lab.home.arpa/homelab-infra?ref=main#"+orExample(s.Hostname))
	}
}

func orExample(host string) string {
	if labelRE().MatchString(host) {
		return host
	}
	return "dns01"
}

func validateBootstrap(errs *Errors, b *Bootstrap) {
	switch {
	case b.AdminUser == "":
		errs.add("spec.bootstrap.adminUser", nil, "is required; name the admin user cloud-init creates, e.g. ops")
	case b.AdminUser == "root":
		errs.add("spec.bootstrap.adminUser", b.AdminUser, "is not allowed; name an unprivileged user, who gets sudo")
	case !userRE().MatchString(b.AdminUser):
		errs.add("spec.bootstrap.adminUser", b.AdminUser, "is not a valid user name; use at most 32 lower-case letters, digits, '_' and '-', starting with a letter or '_'")
	}

	keys, ref := b.SSHAuthorizedKeys, b.SSHAuthorizedKeysSecretRef
	switch {
	case keys == nil && ref == nil:
		errs.add("spec.bootstrap.sshAuthorizedKeys", nil, "is required; list at least one public key, or set sshAuthorizedKeysSecretRef")
	case keys != nil && ref != nil:
		errs.add("spec.bootstrap.sshAuthorizedKeysSecretRef", nil, "conflicts with spec.bootstrap.sshAuthorizedKeys; give the keys inline or by Secret, not both")
	case keys != nil && len(keys) == 0:
		errs.add("spec.bootstrap.sshAuthorizedKeys", nil, "is empty; list at least one public key, or set sshAuthorizedKeysSecretRef")
	case len(keys) > MaxSSHKeys:
		errs.add("spec.bootstrap.sshAuthorizedKeys", nil, fmt.Sprintf("has %d keys; use at most %d, or a Secret", len(keys), MaxSSHKeys))
	}
	for i, k := range keys {
		// Key values are never echoed: a pasted private key must not end up
		// in events, logs or CI output.
		if err := checkSSHKey(k); err != "" {
			errs.add(fmt.Sprintf("spec.bootstrap.sshAuthorizedKeys[%d]", i), nil, err)
		}
	}
	if ref != nil {
		validateSecretRef(errs, "spec.bootstrap.sshAuthorizedKeysSecretRef", ref, DefaultSecretKey, "name the Secret that holds the keys")
	}
}
