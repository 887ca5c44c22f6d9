package machine_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/machine"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

func input(t *testing.T) *machine.Input {
	t.Helper()
	in, err := repo.LoadInput(filepath.Join(testenv.RepoRoot(t), repo.CompositionPath))
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func ptr(v int64) *int64 { return &v }

func dhcpSpec() *machine.Spec {
	return &machine.Spec{
		Class: "medium", Hostname: "docker01", Image: "nixos-26.05", Network: machine.Network{DHCP: true},
		Proxmox:   machine.Proxmox{VMID: ptr(1060)},
		Bootstrap: machine.Bootstrap{AdminUser: "ops", SSHAuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAFLJ6VeZ/nBqc9gC5W59y5uJxq2icS504scLzx64ilF ops@workstation"}},
		Role:      "docker", Tags: []string{"apps", "docker"},
	}
}

// TestResolveDefaults: what a claim leaves out comes from the site defaults,
// what it sets wins.
func TestResolveDefaults(t *testing.T) {
	in := input(t)
	cases := map[string]struct {
		reason string
		spec   func() *machine.Spec
		check  func(t *testing.T, r *machine.Resolved)
	}{
		"AllDefaults": {
			reason: "placement, domain and flake ref from the site defaults",
			spec:   dhcpSpec,
			check: func(t *testing.T, r *machine.Resolved) {
				got := []string{r.Proxmox.Node, r.Proxmox.Storage, r.Proxmox.Bridge, r.Domain, r.FQDN, r.Nix.FlakeRef, r.FlakeAttr, r.SnippetDatastore, r.ProviderConfig, r.IPv4CIDR}
				want := []string{"pve1", "local-lvm", "vmbr0", "lab.home.arpa", "docker01.lab.home.arpa",
					"git+https://git.lab.home.arpa/homelab-infra?ref=main#docker01", "docker01", "local", "default", ""}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("(-want, +got):\n%s", diff)
				}
				if diff := cmp.Diff(machine.Class{Cores: 2, MemoryMiB: 4096, DiskGiB: 32}, r.Class); diff != "" {
					t.Errorf("class medium (-want, +got):\n%s", diff)
				}
				if diff := cmp.Diff([]string{"apps", "docker"}, r.Tags); diff != "" {
					t.Errorf("role and tags, sorted and unique (-want, +got):\n%s", diff)
				}
				if diff := cmp.Diff([]string{"10.0.10.1"}, r.DNS); diff != "" {
					t.Errorf("nameservers from defaults.dns (-want, +got):\n%s", diff)
				}
			},
		},
		"Overrides": {
			reason: "the claim's own values win; the flake attribute is the ref's",
			spec: func() *machine.Spec {
				s := dhcpSpec()
				s.Proxmox = machine.Proxmox{Node: "pve2", Storage: "ceph", Bridge: "vmbr1", VLAN: ptr(20), VMID: ptr(2001)}
				s.Domain = "example.org"
				s.Nix.FlakeRef = "git+ssh://git@git.example/me/infra?ref=main#shared-docker"
				s.Network = machine.Network{IP: "10.0.20.5", CIDR: "10.0.20.0/23", Gateway: "10.0.20.1", DNS: []string{"10.0.20.2"}}
				return s
			},
			check: func(t *testing.T, r *machine.Resolved) {
				got := []string{r.Proxmox.Node, r.Proxmox.Storage, r.Proxmox.Bridge, r.FQDN, r.FlakeAttr, r.IPv4CIDR, strings.Join(r.DNS, " ")}
				want := []string{"pve2", "ceph", "vmbr1", "docker01.example.org", "shared-docker", "10.0.20.5/23", "10.0.20.2"}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("(-want, +got):\n%s", diff)
				}
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r, err := machine.Resolve(tc.spec(), in, nil)
			if err != nil {
				t.Fatalf("%s: %v", tc.reason, err)
			}
			tc.check(t, r)
		})
	}
}

// TestResolveSecretKeys: keys from a Secret are checked line by line.
func TestResolveSecretKeys(t *testing.T) {
	in := input(t)
	s := dhcpSpec()
	s.Bootstrap.SSHAuthorizedKeys = nil
	s.Bootstrap.SSHAuthorizedKeysSecretRef = &machine.SecretRef{Name: "ops-keys"}
	key := dhcpSpec().Bootstrap.SSHAuthorizedKeys[0]
	r, err := machine.Resolve(s, in, []string{"# team", "", "  " + key + "  "})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{key}, r.Keys); diff != "" {
		t.Errorf("keys (-want, +got):\n%s", diff)
	}
	if _, err := machine.Resolve(s, in, []string{"# nothing here"}); err == nil || !strings.Contains(err.Error(), "spec.bootstrap.sshAuthorizedKeysSecretRef names a Secret key with no public keys") {
		t.Errorf("an empty Secret: want an error naming the field, got %v", err)
	}
}

// TestInputValidation: a broken function input names the input field.
func TestInputValidation(t *testing.T) {
	cases := map[string]struct {
		reason string
		json   string
		want   string
	}{
		"UnknownField":    {reason: "a typo", json: `{"apiVersion":"machine.fn.homelab.dev/v1alpha1","kind":"Input","classes":{},"images":{},"defaults":{},"extra":1}`, want: `unknown field "extra"`},
		"WrongKind":       {reason: "another function's input", json: `{"apiVersion":"x/v1","kind":"Input"}`, want: "input: x/v1/Input must be apiVersion machine.fn.homelab.dev/v1alpha1"},
		"NoClasses":       {reason: "no class", json: `{"apiVersion":"machine.fn.homelab.dev/v1alpha1","kind":"Input","images":{"a":{"templateVmId":9000}},"defaults":{"node":"n","storage":"s","bridge":"b","snippetDatastore":"l"}}`, want: "input.classes is empty"},
		"TinyMemory":      {reason: "memory below 256 MiB", json: `{"apiVersion":"machine.fn.homelab.dev/v1alpha1","kind":"Input","classes":{"s":{"cores":1,"memoryMiB":100,"diskGiB":1}},"images":{"a":{"templateVmId":9000}},"defaults":{"node":"n","storage":"s","bridge":"b","snippetDatastore":"l"}}`, want: "input.classes.s.memoryMiB: 100 must be at least 256"},
		"BadTemplate":     {reason: "template id out of range", json: `{"apiVersion":"machine.fn.homelab.dev/v1alpha1","kind":"Input","classes":{"s":{"cores":1,"memoryMiB":512,"diskGiB":1}},"images":{"a":{"templateVmId":5}},"defaults":{"node":"n","storage":"s","bridge":"b","snippetDatastore":"l"}}`, want: "input.images.a.templateVmId: 5 must be between 100"},
		"NoNode":          {reason: "no default node", json: `{"apiVersion":"machine.fn.homelab.dev/v1alpha1","kind":"Input","classes":{"s":{"cores":1,"memoryMiB":512,"diskGiB":1}},"images":{"a":{"templateVmId":9000}},"defaults":{"storage":"s","bridge":"b","snippetDatastore":"l"}}`, want: "input.defaults.node is missing or invalid"},
		"NoDiskInterface": {reason: "an image without its boot disk", json: `{"apiVersion":"machine.fn.homelab.dev/v1alpha1","kind":"Input","classes":{"s":{"cores":1,"memoryMiB":512,"diskGiB":1}},"images":{"a":{"templateVmId":9000,"diskGiB":8}},"defaults":{"node":"n","storage":"s","bridge":"b","snippetDatastore":"l"}}`, want: "input.images.a.diskInterface must be the template's boot disk"},
		"BadSCSIHardware": {reason: "an image whose controller Proxmox does not know", json: `{"apiVersion":"machine.fn.homelab.dev/v1alpha1","kind":"Input","classes":{"s":{"cores":1,"memoryMiB":512,"diskGiB":1}},"images":{"a":{"templateVmId":9000,"diskInterface":"virtio0","scsiHardware":"virtio-scsi","diskGiB":8}},"defaults":{"node":"n","storage":"s","bridge":"b","snippetDatastore":"l"}}`, want: "input.images.a.scsiHardware: virtio-scsi must be the template's SCSI controller"},
		"BadDefaultDNS":   {reason: "a nameserver that is no address", json: `{"apiVersion":"machine.fn.homelab.dev/v1alpha1","kind":"Input","classes":{"s":{"cores":1,"memoryMiB":512,"diskGiB":1}},"images":{"a":{"templateVmId":9000,"diskInterface":"virtio0","diskGiB":1}},"defaults":{"node":"n","storage":"s","bridge":"b","snippetDatastore":"l","dns":["ns1"]}}`, want: "input.defaults.dns[0]: ns1 is not an IPv4 address"},
		"BadFlakeRepo":    {reason: "a repo with '#'", json: `{"apiVersion":"machine.fn.homelab.dev/v1alpha1","kind":"Input","classes":{"s":{"cores":1,"memoryMiB":512,"diskGiB":1}},"images":{"a":{"templateVmId":9000}},"defaults":{"node":"n","storage":"s","bridge":"b","snippetDatastore":"l","flakeRepo":"git+https://x/r#a"}}`, want: "input.defaults.flakeRepo"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := machine.ParseInput([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: want an error containing %q, got %v", tc.reason, tc.want, err)
			}
		})
	}
}

// TestValidateAgainstInput: the rules that need the function input, each
// naming the field and the fix.
func TestValidateAgainstInput(t *testing.T) {
	cases := map[string]struct {
		reason    string
		edit      func(s *machine.Spec, in *machine.Input)
		wantField string
		wantMsg   string
	}{
		"ClassSmallerThanTemplate": {
			reason: "Proxmox cannot shrink the template's disk to a smaller class",
			edit: func(_ *machine.Spec, in *machine.Input) {
				in.Classes["medium"] = machine.Class{Cores: 2, MemoryMiB: 4096, DiskGiB: 4}
			},
			wantField: "spec.class", wantMsg: "has a 4 GiB disk, smaller than the 8 GiB disk of template nixos-26.05",
		},
		"VMIDIsTemplate": {
			reason:    "a claim on the template's id would adopt the template",
			edit:      func(s *machine.Spec, _ *machine.Input) { s.Proxmox.VMID = ptr(9002) },
			wantField: "spec.proxmox.vmId", wantMsg: "is the template VM of image nixos-26.05",
		},
		"VMIDMissing": {
			reason:    "the VM id is the machine's identity in Proxmox",
			edit:      func(s *machine.Spec, _ *machine.Input) { s.Proxmox.VMID = nil },
			wantField: "spec.proxmox.vmId", wantMsg: "is required",
		},
		"NoNameservers": {
			reason:    "without a claim's or the site's DNS, Proxmox would hand out its host's resolv.conf",
			edit:      func(_ *machine.Spec, in *machine.Input) { in.Defaults.DNS = nil },
			wantField: "spec.network.dns", wantMsg: "its own host's resolv.conf",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := input(t)
			s := dhcpSpec()
			tc.edit(s, in)
			errs := machine.Validate(s, in)
			if len(errs) != 1 || errs[0].Field != tc.wantField || !strings.Contains(errs[0].Error(), tc.wantMsg) {
				t.Errorf("%s: want one error at %s containing %q, got %v", tc.reason, tc.wantField, tc.wantMsg, errs)
			}
		})
	}
	if errs := machine.Validate(dhcpSpec(), input(t)); len(errs) != 0 {
		t.Errorf("the unedited spec: want no error, got %v", errs)
	}
}

// TestNoFlakeRepo: without defaults.flakeRepo a claim must name its flake.
func TestNoFlakeRepo(t *testing.T) {
	in := *input(t)
	in.Defaults.FlakeRepo = ""
	errs := machine.Validate(dhcpSpec(), &in)
	if len(errs) != 1 || errs[0].Field != "spec.nix.flakeRef" {
		t.Errorf("want one error at spec.nix.flakeRef, got %v", errs)
	}
}
