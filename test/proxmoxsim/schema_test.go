package proxmoxsim

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// TestSchemaValidation: every call is checked against the API schema of
// the release played, and refused as Proxmox refuses it: 400 "Parameter
// verification failed." with each bad parameter and why under "errors".
// The same calls run against PVE 9.1 and PVE 8.4.
func TestSchemaValidation(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		reason       string
		method, path string
		form         url.Values
		// wantErrors is the body's errors ("param: message"), "" for none.
		wantErrors string
		wantStatus int
		wantReason string
	}{
		"UnknownParameter": {
			reason: "additionalProperties 0", method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config",
			form:       url.Values{"corez": {"2"}},
			wantErrors: "corez: property is not defined in schema and the schema does not allow additional properties",
		},
		"WrongType": {
			reason: "integer", method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config",
			form: url.Values{"cores": {"two"}}, wantErrors: "cores: type check ('integer') failed - got 'two'",
		},
		"BooleanIsOneOrZero": {
			reason: "the API takes 1 and 0, not true", method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config",
			form: url.Values{"onboot": {"true"}}, wantErrors: "onboot: type check ('boolean') failed - got 'true'",
		},
		"BelowMinimum": {
			reason: "minimum 1", method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config",
			form: url.Values{"cores": {"0"}}, wantErrors: "cores: value must have a minimum value of 1",
		},
		"Enum": {
			reason: "ostype's enum", method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config",
			form:       url.Values{"ostype": {"linux"}},
			wantErrors: "ostype: value 'linux' does not have a value in the enumeration",
		},
		"Pattern": {
			reason: "resize's size pattern, anchored", method: http.MethodPut, path: "/nodes/pve1/qemu/1053/resize",
			form: url.Values{"disk": {"virtio0"}, "size": {"16GB"}}, wantErrors: "size: value does not match the regex pattern",
		},
		"MissingRequired": {
			reason: "clone's newid", method: http.MethodPost, path: "/nodes/pve1/qemu/9002/clone",
			form: url.Values{"full": {"1"}}, wantErrors: "newid: property is missing and it is not optional",
		},
		"PropertyStringUnknownKey": {
			reason: "net's keys are fully described", method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config",
			form:       url.Values{"net0": {"virtio,bridge=vmbr0,vlan=10"}},
			wantErrors: "net0: invalid format - invalid key in comma-separated list property: vlan",
		},
		"PropertyStringRange": {
			reason: "net's tag is 1-4094", method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config",
			form:       url.Values{"net0": {"virtio,bridge=vmbr0,tag=5000"}},
			wantErrors: "net0: invalid format - format error\nnet0.tag: value must have a maximum value of 4094",
		},
		"DiskUnknownKey": {
			reason: "a disk's keys", method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config",
			form:       url.Values{"virtio0": {"local-lvm:vm-1053-disk-0,discard=on,trim=1"}},
			wantErrors: "virtio0: invalid format - invalid key in comma-separated list property: trim",
		},
		"NamedFormat": {
			reason: "ipconfig's ip is an IPv4 CIDR, dhcp or manual (pve-qm-ipconfig)", method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config",
			form:       url.Values{"ipconfig0": {"ip=10.0.10.53,gw=10.0.10.1"}},
			wantErrors: "ipconfig0: invalid format - format error\nipconfig0.ip: invalid format - value does not look like a valid ipv4 network configuration",
		},
		"NamedFormatRequires": {
			reason: "a gateway needs an address", method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config",
			form:       url.Values{"ipconfig0": {"gw=10.0.10.1"}},
			wantErrors: "ipconfig0: invalid format - format error\nipconfig0.ip: missing property - 'ipconfig0.gw' requires this property",
		},
		"IndexOutOfRange": {
			reason: "virtio disks are 0-15", method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config",
			form:       url.Values{"virtio16": {"local-lvm:1"}},
			wantErrors: "virtio16: property is not defined in schema and the schema does not allow additional properties",
		},
		"DuplicateURIParameter": {
			reason: "a parameter repeating a path placeholder", method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config",
			form: url.Values{"vmid": {"1053"}, "cores": {"2"}}, wantErrors: "vmid: duplicate parameter (already defined in URI)",
		},
		"UnknownMethod": {
			reason: "no such method in the release", method: http.MethodPatch, path: "/nodes/pve1/qemu/1053/config",
			wantStatus: 501, wantReason: "Method 'PATCH /nodes/pve1/qemu/1053/config' not implemented",
		},
		"UnknownPath": {
			reason: "no such path", method: http.MethodGet, path: "/nodes/pve1/qemu/1053/vnc",
			wantStatus: 501, wantReason: "Method 'GET /nodes/pve1/qemu/1053/vnc' not implemented",
		},
		"Valid": {
			reason: "a valid update", method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config",
			form:       url.Values{"cores": {"2"}, "net0": {"virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=10,firewall=1"}, "ipconfig0": {"ip=10.0.10.53/24,gw=10.0.10.1"}},
			wantStatus: 200,
		},
	}
	for _, major := range []int{9, 8} {
		t.Run("PVE"+itoa(major), func(t *testing.T) {
			for name, tc := range cases {
				t.Run(name, func(t *testing.T) {
					s := newSim(t, func(o *Options) { o.PVE = major })
					clone(t, s, "1053")
					got := do(t, s, tc.method, tc.path, tc.form)
					if tc.wantErrors != "" {
						if got.Status != 400 || got.Reason != "Parameter verification failed." || !strings.HasPrefix(got.Errors, tc.wantErrors) {
							t.Errorf("%s: want 400 Parameter verification failed. with %q, got %d %q %q", tc.reason, tc.wantErrors, got.Status, got.Reason, got.Errors)
						}
						return
					}
					if got.Status != tc.wantStatus || (tc.wantReason != "" && got.Reason != tc.wantReason) {
						t.Errorf("%s: want %d %q, got %d %q %q", tc.reason, tc.wantStatus, tc.wantReason, got.Status, got.Reason, got.Errors)
					}
				})
			}
		})
	}
}

// TestReleaseDifferences: what one release has and the other has not is
// refused on the other (the schema's own changes, pve-api README).
func TestReleaseDifferences(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		form url.Values
		ok9  bool
		ok8  bool
	}{
		"AllowKSM9Only":   {url.Values{"allow-ksm": {"1"}}, true, false},
		"AgentFreezeFS9":  {url.Values{"agent": {"enabled=1,freeze-fs=0"}}, true, false},
		"DiskCyls8Only":   {url.Values{"virtio0": {"local-lvm:vm-1053-disk-0,cyls=2"}}, false, true},
		"BothAgentFreeze": {url.Values{"agent": {"enabled=1,freeze-fs-on-backup=0"}}, true, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			for major, want := range map[int]bool{9: tc.ok9, 8: tc.ok8} {
				s := newSim(t, func(o *Options) { o.PVE = major })
				clone(t, s, "1053")
				got := do(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/config", tc.form)
				if (got.Status == 200) != want {
					t.Errorf("PVE %d: want accepted %v, got %d %q %s", major, want, got.Status, got.Reason, got.Errors)
				}
			}
		})
	}
}

// TestDriveNamesAreTheSchemas: the drive names the simulator knows are
// exactly those the resize method's disk enum lists, in both releases.
func TestDriveNamesAreTheSchemas(t *testing.T) {
	t.Parallel()
	for _, major := range []int{8, 9} {
		api, err := LoadAPI(major)
		if err != nil {
			t.Fatal(err)
		}
		enum := api.Endpoint("PUT", "/nodes/{node}/qemu/{vmid}/resize").Parameters.Properties["disk"].Enum
		for _, d := range enum {
			if !isDrive(d) {
				t.Errorf("PVE %d: %s is a drive", major, d)
			}
		}
		for _, bus := range []string{"ide", "sata", "scsi", "virtio"} {
			for i := 0; i < 40; i++ {
				d := bus + itoa(i)
				if isDrive(d) && !contains(enum, d) {
					t.Errorf("PVE %d: the simulator knows %s, the schema does not", major, d)
				}
			}
		}
	}
}

// TestSCSIHardwareIsTheSchemas: the controller models a function input's
// image may name (machine.SCSIHardwareModels) are the scsihw enum of the
// qemu config API, in both releases.
func TestSCSIHardwareIsTheSchemas(t *testing.T) {
	t.Parallel()
	for _, major := range []int{8, 9} {
		api, err := LoadAPI(major)
		if err != nil {
			t.Fatal(err)
		}
		enum := api.Endpoint("PUT", "/nodes/{node}/qemu/{vmid}/config").Parameters.Properties["scsihw"].Enum
		if diff := cmp.Diff(enum, machine.SCSIHardwareModels); diff != "" {
			t.Errorf("PVE %d: machine.SCSIHardwareModels is not the schema's scsihw enum (-schema, +ours):\n%s", major, diff)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestFormatsChecked: every named format the parameters of the simulated
// methods use (their property strings' keys included) is one the
// simulator checks, but those listed here, whose registering code the
// search tools did not hold (so the simulator refuses nothing for them).
func TestFormatsChecked(t *testing.T) {
	t.Parallel()
	notChecked := map[string]string{
		"pve-bridge-id":       "pve-common's parse_bridge_id: not in the stored JSONSchema.pm",
		"mac-addr":            "pve-common's pve_verify_mac_addr: not in the stored JSONSchema.pm",
		"pve-tag-list":        "pve-common's pve_verify_tag: not in the stored JSONSchema.pm",
		"pve-vm-cpu-conf":     "qemu-server CPUConfig.pm's format: keys only in typetext",
		"pve-qm-smbios1":      "qemu-server's $smbios1_fmt: not read",
		"pve-cpuset":          "PVE::CpuSet::parse_cpuset: not read",
		"pve-qm-hostpci":      "qemu-server PCI.pm: not read (root-only option)",
		"pve-qm-rng":          "qemu-server RNG.pm: not read",
		"pve-qm-watchdog":     "qemu-server's $watchdog_fmt: not read",
		"pve-qemu-sev-fmt":    "qemu-server CPUConfig.pm: not read",
		"pve-qemu-tdx-fmt":    "qemu-server CPUConfig.pm: not read",
		"pve-qm-ide":          "the cdrom alias: checked as ide2 after resolve_cdrom_alias",
		"storage-pair-list":   "vm_start's migration target storages: not read",
		"pve-storage-content": "pve-storage's content types: not read",
		"pve-qm-bootdisk":     "qemu-server's verify_bootdisk: the option's pattern is checked",
		// PUT /storage/{storage} (pvesm set): only content is simulated,
		// every other option is refused as not simulated (pvesm.go).
		"pve-storage-content-list":    "pve-storage's content types: not read",
		"prune-backups":               "pvesm set: not simulated",
		"pve-dir-override-list":       "pvesm set: not simulated",
		"pve-storage-options":         "pvesm set: not simulated",
		"pve-storage-path":            "pvesm set: not simulated",
		"pve-storage-portal-dns-list": "pvesm set: not simulated",
		"pve-storage-server":          "pvesm set: not simulated",
	}
	api, err := LoadAPI(9)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	seen := map[string]bool{}
	var visit func(p *Prop)
	visit = func(p *Prop) {
		if p == nil {
			return
		}
		if p.FormatName != "" && !seen[p.FormatName] {
			seen[p.FormatName] = true
			if _, listed := notChecked[p.FormatName]; !listed && !knownFormat(p.FormatName) {
				missing = append(missing, p.FormatName)
			}
		}
		for _, k := range sortedKeys(p.Format) {
			visit(p.Format[k])
		}
	}
	for key := range handlers {
		method, path, _ := strings.Cut(key, " ")
		ep := api.Endpoint(method, path)
		if ep == nil {
			t.Errorf("the simulator serves %s, which PVE 9.1 has not", key)
			continue
		}
		for _, k := range sortedKeys(ep.Parameters.Properties) {
			visit(ep.Parameters.Properties[k])
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("named formats neither checked nor listed as not checked: %v", missing)
	}
	for _, name := range sortedKeys(notChecked) {
		if !seen[name] || knownFormat(name) {
			t.Errorf("%s is listed as not checked, but the simulated methods do not use it or it is checked", name)
		}
	}
}

// TestErrorShape: an error answer carries Proxmox's message in its status
// line, and its body is {"data":null} plus the parameter errors.
func TestErrorShape(t *testing.T) {
	t.Parallel()
	s := newSim(t)
	got := do(t, s, http.MethodGet, "/nodes/pve1/qemu/4242/config", nil)
	if got.Status != 500 || got.Reason != "Configuration file 'nodes/pve1/qemu-server/4242.conf' does not exist" || string(got.Data) != "null" {
		t.Errorf("a missing VM: want 500 with the message in the status line and data null, got %d %q %s", got.Status, got.Reason, got.Data)
	}
}
