package nocloud

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFromInitialization(t *testing.T) {
	cases := map[string]struct {
		reason     string
		init       map[string]any
		macs       []string
		wantIfaces []Interface
		wantDNS    DNS
		wantErr    string
	}{
		"Static": {
			reason: "A static claim's ipConfig becomes ipconfig0 ip=/gw=, its DNS block nameserver and searchdomain.",
			init: map[string]any{
				"ipConfig": []any{map[string]any{"ipv4": []any{map[string]any{"address": "10.0.10.53/24", "gateway": "10.0.10.1"}}}},
				"dns":      []any{map[string]any{"domain": "lab.home.arpa", "servers": []any{"10.0.10.1"}}},
			},
			macs:       []string{"bc:24:11:00:10:53"},
			wantIfaces: []Interface{{Index: 0, MAC: "bc:24:11:00:10:53", IPConfig: IPConfig{IP: "10.0.10.53/24", Gateway: "10.0.10.1"}}},
			wantDNS:    DNS{Nameservers: []string{"10.0.10.1"}, SearchDomains: []string{"lab.home.arpa"}},
		},
		"DHCP": {
			reason:     "address: dhcp is ip=dhcp; no DNS block is no nameserver settings.",
			init:       map[string]any{"ipConfig": []any{map[string]any{"ipv4": []any{map[string]any{"address": "dhcp"}}}}},
			macs:       []string{"bc:24:11:00:00:02"},
			wantIfaces: []Interface{{Index: 0, MAC: "bc:24:11:00:00:02", IPConfig: IPConfig{IP: DHCP}}},
		},
		"NoMAC": {
			reason:  "Every interface needs the MAC Proxmox gave it.",
			init:    map[string]any{"ipConfig": []any{map[string]any{"ipv4": []any{map[string]any{"address": "dhcp"}}}}},
			wantErr: "no MAC address for net0",
		},
		"NoIPv4": {
			reason:  "An ipConfig entry without ipv4 cannot become ipconfigN.",
			init:    map[string]any{"ipConfig": []any{map[string]any{}}},
			macs:    []string{"bc:24:11:00:00:02"},
			wantErr: "initialization.ipConfig[0].ipv4",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ifaces, dns, err := FromInitialization(tc.init, tc.macs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("%s\nwant an error containing %q, got %v", tc.reason, tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s\nunexpected error: %v", tc.reason, err)
			}
			if diff := cmp.Diff(tc.wantIfaces, ifaces); diff != "" {
				t.Errorf("%s\ninterfaces: -want, +got:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.wantDNS, dns); diff != "" {
				t.Errorf("%s\nDNS: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
