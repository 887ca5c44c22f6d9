// Package nocloud makes what Proxmox VE writes on a VM's cloud-init drive in
// its "nocloud" format (qemu-server's Cloudinit.pm): the network-config it
// derives from the VM's ipconfigN, nameserver and searchdomain settings, the
// meta-data naming the instance, and the seed ISO (volume label cidata)
// holding them next to the user-data snippet.
//
// Decision D4 keeps a Machine's network in Proxmox's own cloud-init fields, so
// the guest's network-config is Proxmox's, not ours. The VM suite uses this
// package to hand a guest exactly what Proxmox would; nothing here runs in
// production.
package nocloud

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // Proxmox names the instance by a SHA-1 of the seed; not a security use.
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"sort"

	"go.yaml.in/yaml/v3"
)

// DHCP is the IPConfig.IP value asking for DHCP (Proxmox's ip=dhcp).
const DHCP = "dhcp"

// Interface is one of the VM's network devices, netN in Proxmox.
type Interface struct {
	// Index is N of netN; the guest names the device ethN.
	Index int
	// MAC is the device's address (Proxmox's macaddr); cloud-init matches it.
	MAC string
	// IPConfig is Proxmox's ipconfigN for this device.
	IPConfig IPConfig
}

// IPConfig is Proxmox's ipconfigN: ip=<CIDR>|dhcp,gw=<IP>. IPv6 (ip6=, gw6=)
// is left out: the Machine model has no IPv6 yet.
type IPConfig struct {
	// IP is an IPv4 address with its prefix length (10.0.10.53/24), or DHCP.
	IP string
	// Gateway is the IPv4 default gateway; only with a static IP.
	Gateway string
}

// DNS is Proxmox's nameserver and searchdomain settings. Proxmox falls back to
// its node's /etc/resolv.conf when they are unset; there is no node here, so
// unset means none.
type DNS struct {
	Nameservers   []string
	SearchDomains []string
}

// networkConfig is cloud-init's network config version 1, in the shape and
// key order Proxmox writes it.
type networkConfig struct {
	Version int           `yaml:"version"`
	Config  []configEntry `yaml:"config"`
}

type configEntry struct {
	Type string `yaml:"type"`
	// type: physical
	Name       string   `yaml:"name,omitempty"`
	MACAddress quoted   `yaml:"mac_address,omitempty"`
	Subnets    []subnet `yaml:"subnets,omitempty"`
	// type: nameserver
	Address []quoted `yaml:"address,omitempty"`
	Search  []quoted `yaml:"search,omitempty"`
}

type subnet struct {
	Type    string `yaml:"type"`
	Address quoted `yaml:"address,omitempty"`
	Netmask quoted `yaml:"netmask,omitempty"`
	Gateway quoted `yaml:"gateway,omitempty"`
}

// quoted is a value written in single quotes, as Proxmox writes every address:
// cloud-init reads YAML 1.1, where an all-digit MAC such as 52:54:00:12:34:56
// would otherwise be a base-60 integer.
type quoted string

func (q quoted) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.SingleQuotedStyle, Value: string(q)}, nil
}

// NetworkConfig returns the network-config Proxmox writes for a VM with these
// interfaces and DNS settings: version 1, one physical entry per interface
// (matched by MAC, named ethN), a static subnet with a dotted netmask or a
// dhcp4 subnet, and one global nameserver entry.
func NetworkConfig(ifaces []Interface, dns DNS) ([]byte, error) {
	if len(ifaces) == 0 {
		return nil, fmt.Errorf("cannot render network-config: no interfaces (give net0 an ipconfig0)")
	}
	sorted := append([]Interface(nil), ifaces...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Index < sorted[j].Index })

	nc := networkConfig{Version: 1}
	seen := map[int]bool{}
	for _, ifc := range sorted {
		if seen[ifc.Index] {
			return nil, fmt.Errorf("cannot render network-config: net%d is given twice", ifc.Index)
		}
		seen[ifc.Index] = true
		e, err := physical(ifc)
		if err != nil {
			return nil, fmt.Errorf("cannot render network-config: %w", err)
		}
		nc.Config = append(nc.Config, e)
	}
	ns, err := nameserver(dns)
	if err != nil {
		return nil, fmt.Errorf("cannot render network-config: %w", err)
	}
	if ns != nil {
		nc.Config = append(nc.Config, *ns)
	}

	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(nc); err != nil {
		return nil, fmt.Errorf("cannot encode network-config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("cannot encode network-config: %w", err)
	}
	return b.Bytes(), nil
}

func physical(ifc Interface) (configEntry, error) {
	field := fmt.Sprintf("net%d", ifc.Index)
	if ifc.Index < 0 {
		return configEntry{}, fmt.Errorf("%s: the interface index must be 0 or more", field)
	}
	mac, err := net.ParseMAC(ifc.MAC)
	if err != nil || len(mac) != 6 {
		return configEntry{}, fmt.Errorf("%s: macaddr %q is not a MAC address like bc:24:11:00:00:01", field, ifc.MAC)
	}
	e := configEntry{Type: "physical", Name: fmt.Sprintf("eth%d", ifc.Index), MACAddress: quoted(mac.String())}

	ipc := ifc.IPConfig
	cfield := fmt.Sprintf("ipconfig%d", ifc.Index)
	switch {
	case ipc.IP == "":
		return configEntry{}, fmt.Errorf("%s: ip is empty (give ip=<address>/<prefix> or ip=dhcp)", cfield)
	case ipc.IP == DHCP:
		if ipc.Gateway != "" {
			return configEntry{}, fmt.Errorf("%s: gw %q is set with ip=dhcp (DHCP gives the gateway; drop gw)", cfield, ipc.Gateway)
		}
		e.Subnets = []subnet{{Type: "dhcp4"}}
	default:
		p, err := netip.ParsePrefix(ipc.IP)
		if err != nil || !p.Addr().Is4() {
			return configEntry{}, fmt.Errorf("%s: ip %q is not an IPv4 address with a prefix length like 10.0.10.53/24, nor dhcp", cfield, ipc.IP)
		}
		s := subnet{Type: "static", Address: quoted(p.Addr().String()), Netmask: quoted(netmask(p.Bits()))}
		if ipc.Gateway != "" {
			gw, err := netip.ParseAddr(ipc.Gateway)
			if err != nil || !gw.Is4() {
				return configEntry{}, fmt.Errorf("%s: gw %q is not an IPv4 address", cfield, ipc.Gateway)
			}
			if !p.Masked().Contains(gw) {
				return configEntry{}, fmt.Errorf("%s: gw %s is outside %s (use a gateway in the VM's subnet)", cfield, gw, p.Masked())
			}
			s.Gateway = quoted(gw.String())
		}
		e.Subnets = []subnet{s}
	}
	return e, nil
}

func nameserver(dns DNS) (*configEntry, error) {
	if len(dns.Nameservers) == 0 && len(dns.SearchDomains) == 0 {
		return nil, nil
	}
	e := configEntry{Type: "nameserver"}
	for _, s := range dns.Nameservers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("nameserver: %q is not an IP address", s)
		}
		e.Address = append(e.Address, quoted(a.String()))
	}
	for _, d := range dns.SearchDomains {
		if !isDomain(d) {
			return nil, fmt.Errorf("searchdomain: %q is not a DNS domain like lab.home.arpa", d)
		}
		e.Search = append(e.Search, quoted(d))
	}
	return &e, nil
}

// netmask is the dotted IPv4 netmask of a prefix length, as Proxmox writes it.
func netmask(bits int) string {
	return net.IP(net.CIDRMask(bits, 32)).String()
}

// isDomain accepts dot-separated RFC 1123 labels.
func isDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(d); i++ {
		c := d[i]
		switch {
		case c == '.':
			if label == 0 || d[i-1] == '-' {
				return false
			}
			label = 0
			continue
		case c == '-':
			if label == 0 {
				return false
			}
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			return false
		}
		label++
		if label > 63 {
			return false
		}
	}
	return label > 0 && d[len(d)-1] != '-'
}

// MetaData returns the meta-data Proxmox writes: the instance id is the SHA-1
// of the user-data and network-config, so a changed seed is a new instance to
// cloud-init and an unchanged one is not (a reboot does not re-run first-boot
// modules).
func MetaData(userData, networkConfig []byte) []byte {
	h := sha1.New() //nolint:gosec // see the import.
	h.Write(userData)
	h.Write(networkConfig)
	return []byte("instance-id: " + hex.EncodeToString(h.Sum(nil)) + "\n")
}
