package nocloud

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

func TestNetworkConfigGolden(t *testing.T) {
	cases := map[string]struct {
		reason string
		ifaces []Interface
		dns    DNS
	}{
		"static": {
			reason: "A static claim (dns01) becomes a static subnet with a dotted netmask and a global nameserver entry, as Proxmox writes it.",
			ifaces: []Interface{{Index: 0, MAC: "BC:24:11:00:10:53", IPConfig: IPConfig{IP: "10.0.10.53/24", Gateway: "10.0.10.1"}}},
			dns:    DNS{Nameservers: []string{"10.0.10.1", "1.1.1.1"}, SearchDomains: []string{"lab.home.arpa"}},
		},
		"dhcp": {
			reason: "A DHCP claim (docker01) becomes a dhcp4 subnet and no nameserver entry when no DNS is set.",
			ifaces: []Interface{{Index: 0, MAC: "bc:24:11:00:00:02", IPConfig: IPConfig{IP: DHCP}}},
		},
		"two-interfaces": {
			reason: "Interfaces are ordered by index and named ethN whatever order they are given in; an all-digit MAC stays quoted (YAML 1.1 would read it as a number).",
			ifaces: []Interface{
				{Index: 1, MAC: "bc:24:11:00:00:12", IPConfig: IPConfig{IP: "192.168.7.5/28"}},
				{Index: 0, MAC: "52:54:00:12:34:56", IPConfig: IPConfig{IP: DHCP}},
			},
			dns: DNS{SearchDomains: []string{"lab.home.arpa"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := NetworkConfig(tc.ifaces, tc.dns)
			if err != nil {
				t.Fatalf("%s\nNetworkConfig(...): unexpected error: %v", tc.reason, err)
			}
			golden := filepath.Join("testdata", name+".network-config.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("cannot read golden file (run with -update to create it): %v", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s\nNetworkConfig(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestNetworkConfigErrors(t *testing.T) {
	good := IPConfig{IP: "10.0.10.53/24", Gateway: "10.0.10.1"}
	cases := map[string]struct {
		reason string
		ifaces []Interface
		dns    DNS
		want   string // a part of the error that names the field
	}{
		"NoInterfaces":   {reason: "A VM without an ipconfig has nothing to configure.", want: "no interfaces"},
		"BadMAC":         {reason: "The MAC is what cloud-init matches; a wrong one would configure nothing.", ifaces: []Interface{{MAC: "bc:24:11", IPConfig: good}}, want: "net0: macaddr"},
		"EmptyIP":        {reason: "ip= is required.", ifaces: []Interface{{MAC: "bc:24:11:00:00:01"}}, want: "ipconfig0: ip is empty"},
		"NoPrefix":       {reason: "Proxmox needs a CIDR, not a bare address.", ifaces: []Interface{{MAC: "bc:24:11:00:00:01", IPConfig: IPConfig{IP: "10.0.10.53"}}}, want: "ipconfig0: ip \"10.0.10.53\""},
		"IPv6AsIP":       {reason: "ip= is IPv4 only.", ifaces: []Interface{{MAC: "bc:24:11:00:00:01", IPConfig: IPConfig{IP: "fd00::5/64"}}}, want: "ipconfig0: ip"},
		"BadGateway":     {reason: "gw must be an address.", ifaces: []Interface{{MAC: "bc:24:11:00:00:01", IPConfig: IPConfig{IP: "10.0.10.53/24", Gateway: "router"}}}, want: "ipconfig0: gw \"router\""},
		"GatewayOutside": {reason: "A gateway outside the subnet is unreachable on the link.", ifaces: []Interface{{MAC: "bc:24:11:00:00:01", IPConfig: IPConfig{IP: "10.0.10.53/24", Gateway: "10.0.11.1"}}}, want: "outside 10.0.10.0/24"},
		"GatewayDHCP":    {reason: "DHCP brings its own gateway.", ifaces: []Interface{{MAC: "bc:24:11:00:00:01", IPConfig: IPConfig{IP: DHCP, Gateway: "10.0.10.1"}}}, want: "with ip=dhcp"},
		"Duplicate":      {reason: "One netN is one device.", ifaces: []Interface{{MAC: "bc:24:11:00:00:01", IPConfig: good}, {MAC: "bc:24:11:00:00:02", IPConfig: good}}, want: "net0 is given twice"},
		"BadNameserver":  {reason: "Nameservers are addresses.", ifaces: []Interface{{MAC: "bc:24:11:00:00:01", IPConfig: good}}, dns: DNS{Nameservers: []string{"dns.lab"}}, want: "nameserver: \"dns.lab\""},
		"BadSearch":      {reason: "A search domain with a space would break resolv.conf.", ifaces: []Interface{{MAC: "bc:24:11:00:00:01", IPConfig: good}}, dns: DNS{SearchDomains: []string{"lab home"}}, want: "searchdomain: \"lab home\""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := NetworkConfig(tc.ifaces, tc.dns)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s\nNetworkConfig(...): want an error containing %q, got %v", tc.reason, tc.want, err)
			}
		})
	}
}

func TestMetaData(t *testing.T) {
	a := MetaData([]byte("#cloud-config\n"), []byte("version: 1\n"))
	b := MetaData([]byte("#cloud-config\n"), []byte("version: 1\n"))
	c := MetaData([]byte("#cloud-config\nhostname: x\n"), []byte("version: 1\n"))
	if diff := cmp.Diff(string(a), string(b)); diff != "" {
		t.Errorf("the same seed must keep its instance id (a reboot is not a new instance): -want, +got:\n%s", diff)
	}
	if string(a) == string(c) {
		t.Errorf("a changed user-data must be a new instance, got the same meta-data %q", a)
	}
	var md struct {
		InstanceID string `yaml:"instance-id"`
	}
	if err := yaml.Unmarshal(a, &md); err != nil || len(md.InstanceID) != 40 {
		t.Errorf("meta-data %q: want instance-id as 40 hex digits (err %v)", a, err)
	}
}

// FuzzNetworkConfig: whatever the input, the renderer either names what is
// wrong or returns YAML that reads back to the addresses it was given.
func FuzzNetworkConfig(f *testing.F) {
	f.Add("bc:24:11:00:10:53", "10.0.10.53/24", "10.0.10.1", "10.0.10.1", "lab.home.arpa")
	f.Add("bc:24:11:00:10:53", "dhcp", "", "", "")
	f.Add("x", "10.0.10.53/33", "::1", "a b", "-bad-")
	f.Fuzz(func(t *testing.T, mac, ip, gw, ns, search string) {
		dns := DNS{}
		if ns != "" {
			dns.Nameservers = []string{ns}
		}
		if search != "" {
			dns.SearchDomains = []string{search}
		}
		out, err := NetworkConfig([]Interface{{MAC: mac, IPConfig: IPConfig{IP: ip, Gateway: gw}}}, dns)
		if err != nil {
			return
		}
		var nc networkConfig
		if err := yaml.Unmarshal(out, &nc); err != nil {
			t.Fatalf("output is not YAML: %v\n%s", err, out)
		}
		if nc.Version != 1 || len(nc.Config) == 0 || nc.Config[0].Name != "eth0" {
			t.Fatalf("output lost its shape:\n%s", out)
		}
		if gw != "" && nc.Config[0].Subnets[0].Gateway == "" {
			t.Fatalf("gateway %q was dropped:\n%s", gw, out)
		}
	})
}
