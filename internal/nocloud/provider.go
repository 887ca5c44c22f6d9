package nocloud

import (
	"fmt"
)

// FromInitialization maps a VirtualMachine's spec.forProvider.initialization
// block (our provider's, as internal/compose writes it) to the Proxmox
// settings it becomes: ipConfig[N].ipv4[0] {address, gateway} is ipconfigN
// ip=/gw=, dns[0].servers is nameserver and dns[0].domain is searchdomain.
// macs[N] is netN's MAC, which Proxmox picks when the VM is created (the
// composition leaves it unset), so the caller supplies it.
func FromInitialization(init map[string]any, macs []string) ([]Interface, DNS, error) {
	var ifaces []Interface
	ipConfigs, _ := init["ipConfig"].([]any)
	for i, c := range ipConfigs {
		field := fmt.Sprintf("initialization.ipConfig[%d]", i)
		cm, _ := c.(map[string]any)
		v4, _ := cm["ipv4"].([]any)
		if len(v4) != 1 {
			return nil, DNS{}, fmt.Errorf("%s.ipv4: want one entry, got %d", field, len(v4))
		}
		a, _ := v4[0].(map[string]any)
		addr, _ := a["address"].(string)
		gw, _ := a["gateway"].(string)
		if i >= len(macs) {
			return nil, DNS{}, fmt.Errorf("%s: no MAC address for net%d (give one per ipConfig entry)", field, i)
		}
		ifaces = append(ifaces, Interface{Index: i, MAC: macs[i], IPConfig: IPConfig{IP: addr, Gateway: gw}})
	}
	var dns DNS
	if blocks, _ := init["dns"].([]any); len(blocks) > 0 {
		d, _ := blocks[0].(map[string]any)
		servers, _ := d["servers"].([]any)
		for _, s := range servers {
			str, ok := s.(string)
			if !ok {
				return nil, DNS{}, fmt.Errorf("initialization.dns[0].servers: %v is not a string", s)
			}
			dns.Nameservers = append(dns.Nameservers, str)
		}
		if domain, _ := d["domain"].(string); domain != "" {
			dns.SearchDomains = []string{domain}
		}
	}
	return ifaces, dns, nil
}
