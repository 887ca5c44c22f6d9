package proxmoxsim

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// These tests hold the simulator to the Proxmox behaviour it claims to
// model (doc.go), through its HTTP API as bpg calls it. They need nothing
// but Go, so they run under -short.

func TestCloneCopiesTheTemplate(t *testing.T) {
	s := newSim(t)
	clone(t, s, "1053")
	st, tmpl := vmState(t, s, 1053), vmState(t, s, 9002)
	for _, opt := range []string{"boot", "serial0", "ostype", "scsihw", "agent"} {
		if st.Config[opt] != tmpl.Config[opt] {
			t.Errorf("option %s: the clone has %q, the template %q", opt, st.Config[opt], tmpl.Config[opt])
		}
	}
	if _, isTemplate := st.Config["template"]; isTemplate {
		t.Error("the clone is a template")
	}
	if got, want := st.Disks, map[string]int64{"virtio0": 8 << 30}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("disks: want %v (the template's virtio0, copied), got %v", want, got)
	}
	if !strings.HasPrefix(st.Config["virtio0"], "local-lvm:vm-1053-disk-0,") {
		t.Errorf("virtio0 is not a volume of the clone: %q", st.Config["virtio0"])
	}
	if st.Config["ide2"] != "local-lvm:vm-1053-cloudinit,media=cdrom" {
		t.Errorf("ide2: want the clone's own cloud-init drive, got %q", st.Config["ide2"])
	}
	if st.Config["net0"] == tmpl.Config["net0"] || !strings.HasPrefix(st.Config["net0"], "virtio=BC:24:11:") {
		t.Errorf("net0 must get a new MAC: clone %q, template %q", st.Config["net0"], tmpl.Config["net0"])
	}
}

func TestCloneRefusals(t *testing.T) {
	s := newSim(t)
	clone(t, s, "1053")
	cases := map[string]struct {
		reason, newid, want string
		code                int
	}{
		"BelowMin":  {reason: "VM ids have three digits or more (pve-vmid format)", newid: "99", want: "newid: invalid format - value does not look like a valid VM ID", code: 400},
		"InUse":     {reason: "the id is taken", newid: "1053", want: "unable to create VM 1053: config file already exists", code: 500},
		"Template":  {reason: "the template's own id", newid: "9002", want: "config file already exists", code: 500},
		"NotNumber": {reason: "not an integer", newid: "x", want: "integer", code: 400},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a := do(t, s, http.MethodPost, "/nodes/pve1/qemu/9002/clone", url.Values{"newid": {tc.newid}, "full": {"1"}})
			got := a.Reason + " " + a.Errors
			if a.Status != tc.code || !strings.Contains(got, tc.want) {
				t.Errorf("%s: want %d %q, got %d %q", tc.reason, tc.code, tc.want, a.Status, got)
			}
		})
	}
}

func TestLockedVM(t *testing.T) {
	s := newSim(t, func(o *Options) { o.TaskTime = 2 * time.Second })
	a := do(t, s, http.MethodPost, "/nodes/pve1/qemu/9002/clone", url.Values{"newid": {"1053"}, "full": {"1"}})
	if a.Status != 200 {
		t.Fatalf("clone: %d %s", a.Status, a.Reason)
	}
	// While the clone runs the new VM carries lock 'clone' (clone_vm).
	a = do(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/config", url.Values{"cores": {"2"}})
	if a.Status != 500 || a.Reason != "VM is locked (clone)" {
		t.Errorf("a config update during the clone: want 500 VM is locked (clone), got %d %q", a.Status, a.Reason)
	}
	var st struct{ Lock string }
	_ = json.Unmarshal(do(t, s, http.MethodGet, "/nodes/pve1/qemu/1053/status/current", nil).Data, &st)
	if st.Lock != "clone" {
		t.Errorf("status/current: want lock clone, got %q", st.Lock)
	}
}

// TestConfigDisks: a disk the VM lacks is allocated empty; a known disk
// keeps its volume and real size whatever the request says; resize grows and
// refuses to shrink.
func TestConfigDisks(t *testing.T) {
	s := newSim(t)
	clone(t, s, "1053")
	ok(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/config", url.Values{
		"scsi0":   {"file=local-lvm:16,size=17179869184,discard=on"},
		"virtio0": {"file=local-lvm:vm-1053-disk-0,size=1,discard=on"},
	})
	st := vmState(t, s, 1053)
	if got := st.Disks; got["scsi0"] != 16<<30 || got["virtio0"] != 8<<30 {
		t.Errorf("disks: want scsi0 a new 16G disk and virtio0 still 8G, got %v", got)
	}
	if st.Config["virtio0"] != "local-lvm:vm-1053-disk-0,discard=on,size=8G" {
		t.Errorf("virtio0 stored as %q; want the volume first, keys sorted, its real size", st.Config["virtio0"])
	}
	ok(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/resize", url.Values{"disk": {"virtio0"}, "size": {"17179869184"}})
	if got := vmState(t, s, 1053).Disks["virtio0"]; got != 16<<30 {
		t.Errorf("after resize: want 16G, got %d", got)
	}
	a := do(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/resize", url.Values{"disk": {"virtio0"}, "size": {"8G"}})
	if a.Status != 500 || a.Reason != "shrinking disks is not supported" {
		t.Errorf("shrink: want 500 shrinking disks is not supported, got %d %q", a.Status, a.Reason)
	}
	a = do(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/config", url.Values{"cores": {"two"}})
	if a.Status != 400 {
		t.Errorf("cores=two: want 400 Parameter verification failed, got %d %q", a.Status, a.Reason)
	}
	a = do(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/config", url.Values{"corez": {"2"}})
	if a.Status != 400 {
		t.Errorf("an unknown option: want 400, got %d %q", a.Status, a.Reason)
	}
}

// TestColdStart: the cicustom snippet is read at every cold start, and a
// missing one fails the start; the boot order decides what boots.
func TestColdStart(t *testing.T) {
	cases := map[string]struct {
		reason      string
		config      url.Values
		snippet     bool
		wantFail    string
		wantDevice  string
		wantProblem string
	}{
		"Boots": {
			reason: "the template's disk in the boot order, the snippet present",
			config: url.Values{"cicustom": {"user=local:snippets/u.yaml"}}, snippet: true, wantDevice: "virtio0",
		},
		"MissingSnippet": {
			reason: "Proxmox reads the snippet when it starts the VM",
			config: url.Values{"cicustom": {"user=local:snippets/u.yaml"}}, wantFail: "can't open",
		},
		"EmptyDiskFirst": {
			reason:  "no boot order and an empty scsi0: Proxmox's default order puts scsi before virtio",
			config:  url.Values{"cicustom": {"user=local:snippets/u.yaml"}, "scsi0": {"file=local-lvm:16"}, "delete": {"boot"}},
			snippet: true, wantProblem: "no bootable disk",
		},
		"EmptyDiskInOrder": {
			reason:  "a boot order naming only the empty disk",
			config:  url.Values{"cicustom": {"user=local:snippets/u.yaml"}, "scsi0": {"file=local-lvm:16"}, "boot": {"order=scsi0"}},
			snippet: true, wantProblem: "no bootable disk",
		},
		"OrderNamesTemplateDisk": {
			reason:  "an empty scsi0 is harmless when the order names virtio0",
			config:  url.Values{"cicustom": {"user=local:snippets/u.yaml"}, "scsi0": {"file=local-lvm:16"}, "boot": {"order=virtio0"}},
			snippet: true, wantDevice: "virtio0",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := newSim(t)
			clone(t, s, "1053")
			ok(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/config", tc.config)
			if tc.snippet {
				writeSnippet(t, s, "u.yaml", "#cloud-config\nhostname: a\n")
			}
			a := do(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/status/start", nil)
			var upid string
			_ = json.Unmarshal(a.Data, &upid)
			exit := waitTask(t, s, upid)
			st := vmState(t, s, 1053)
			if tc.wantFail != "" {
				if !strings.Contains(exit, tc.wantFail) || st.Status != "stopped" {
					t.Errorf("%s: want a failed start (%q) and a stopped VM, got %q, %s", tc.reason, tc.wantFail, exit, st.Status)
				}
				return
			}
			if exit != "OK" {
				t.Fatalf("%s: start failed: %s", tc.reason, exit)
			}
			if st.Boot.Device != tc.wantDevice || !strings.Contains(st.Boot.Problem, tc.wantProblem) {
				t.Errorf("%s: want boot %q (%q), got %q (%q)", tc.reason, tc.wantDevice, tc.wantProblem, st.Boot.Device, st.Boot.Problem)
			}
			if tc.wantDevice != "" && st.Boot.UserData != "#cloud-config\nhostname: a\n" {
				t.Errorf("%s: the start did not read the snippet: %q", tc.reason, st.Boot.UserData)
			}
		})
	}
}

// TestGuestAgent: the agent answers once the guest booted, with the static
// address or a DHCP lease from the NIC's VLAN; the nameservers are the VM's
// or, without any, the node's own.
func TestGuestAgent(t *testing.T) {
	cases := map[string]struct {
		reason    string
		config    url.Values
		wantAddr  string
		wantNS    string
		wantAgent int
	}{
		"Static": {
			reason:   "cloud-init's static address",
			config:   url.Values{"ipconfig0": {"ip=10.0.10.53/24,gw=10.0.10.1"}, "nameserver": {"10.0.10.1"}},
			wantAddr: "10.0.10.53", wantNS: "10.0.10.1", wantAgent: 200,
		},
		"DHCPLease": {
			reason:   "a DHCP server on VLAN 20 leases an address",
			config:   url.Values{"ipconfig0": {"ip=dhcp"}, "net0": {"virtio,bridge=vmbr0,tag=20"}},
			wantAddr: "10.0.20.", wantNS: "192.0.2.53", wantAgent: 200,
		},
		"DHCPWrongVLAN": {
			reason: "no DHCP server on VLAN 30: the agent answers, with no IPv4 address",
			config: url.Values{"ipconfig0": {"ip=dhcp"}, "net0": {"virtio,bridge=vmbr0,tag=30"}},
			wantNS: "192.0.2.53", wantAgent: 200,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := newSim(t, func(o *Options) { o.BootTime = 300 * time.Millisecond })
			clone(t, s, "1053")
			ok(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/config", tc.config)
			path := "/nodes/pve1/qemu/1053/agent/network-get-interfaces"
			if a := do(t, s, http.MethodGet, path, nil); a.Status != 500 || !strings.Contains(a.Reason, "not running") {
				t.Errorf("before start: want 500 ... not running, got %d %q", a.Status, a.Reason)
			}
			ok(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/status/start", nil)
			if a := do(t, s, http.MethodGet, path, nil); a.Status != 500 || a.Reason != "QEMU guest agent is not running" {
				t.Errorf("while the guest boots: want 500 QEMU guest agent is not running, got %d %q", a.Status, a.Reason)
			}
			time.Sleep(400 * time.Millisecond)
			a := do(t, s, http.MethodGet, path, nil)
			if a.Status != tc.wantAgent {
				t.Fatalf("%s: agent: %d %q", tc.reason, a.Status, a.Reason)
			}
			st := vmState(t, s, 1053)
			got := strings.Join(st.Boot.Addresses, ",")
			if (tc.wantAddr == "" && got != "") || !strings.HasPrefix(got, tc.wantAddr) || !strings.Contains(string(a.Data), tc.wantAddr) {
				t.Errorf("%s: want address %q, got %q (agent: %s)", tc.reason, tc.wantAddr, got, a.Data)
			}
			if ns := strings.Join(st.Boot.Network.Nameservers, ","); ns != tc.wantNS {
				t.Errorf("%s: nameservers: want %q, got %q", tc.reason, tc.wantNS, ns)
			}
		})
	}
}

// TestShutdownOfAGuestThatNeverBooted: nothing answers the ACPI request, so
// the shutdown waits for its whole timeout; a stop does not.
func TestShutdownOfAGuestThatNeverBooted(t *testing.T) {
	s := newSim(t)
	clone(t, s, "1053")
	ok(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/config", url.Values{"boot": {"order=net0"}})
	ok(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/status/start", nil)
	start := time.Now()
	a := do(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/status/shutdown", url.Values{"timeout": {"2"}, "forceStop": {"1"}})
	var upid string
	_ = json.Unmarshal(a.Data, &upid)
	// vm_stop warns "VM still running - terminating now with SIGTERM".
	if exit := waitTask(t, s, upid); exit != "WARNINGS: 1" || time.Since(start) < 2*time.Second {
		t.Errorf("want the shutdown to force-stop (with a warning) after its 2 s timeout, got %q after %s", exit, time.Since(start))
	}
	ok(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/status/start", nil)
	start = time.Now()
	ok(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/status/stop", nil)
	if time.Since(start) > time.Second || vmState(t, s, 1053).Status != "stopped" {
		t.Errorf("a stop should be immediate")
	}
	a = do(t, s, http.MethodDelete, "/nodes/pve1/qemu/1053", url.Values{"purge": {"1"}})
	_ = json.Unmarshal(a.Data, &upid)
	waitTask(t, s, upid)
	if _, found := s.VM(1053); found {
		t.Error("the VM outlived its destroy")
	}
	if a := do(t, s, http.MethodGet, "/nodes/pve1/qemu/1053/status/current", nil); a.Status != 500 || !strings.Contains(a.Reason, "does not exist") {
		t.Errorf("a missing VM: want 500 ... does not exist, got %d %q", a.Status, a.Reason)
	}
}

func TestRefuseClones(t *testing.T) {
	s := newSim(t, func(o *Options) { o.RefuseClones = 1 })
	a := do(t, s, http.MethodPost, "/nodes/pve1/qemu/9002/clone", url.Values{"newid": {"1053"}, "full": {"1"}})
	if a.Status != 500 || a.Reason != "got no worker upid - start worker failed" {
		t.Errorf("a refused clone: want 500 got no worker upid, got %d %q", a.Status, a.Reason)
	}
	if _, found := s.VM(1053); found {
		t.Error("a refused clone left a VM behind")
	}
	clone(t, s, "1053") // the next one is served
}

func TestAuthAndTypes(t *testing.T) {
	s := newSim(t)
	req, _ := http.NewRequest(http.MethodGet, s.URL+"api2/json/version", nil)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	rsp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: want 401, got %d", rsp.StatusCode)
	}
	clone(t, s, "1053")
	a := ok(t, s, http.MethodGet, "/nodes/pve1/qemu/1053/config", nil)
	var conf map[string]any
	if err := json.Unmarshal(a.Data, &conf); err != nil {
		t.Fatal(err)
	}
	// Integers and booleans are bare numbers; property strings are strings.
	if _, isNum := conf["cores"].(float64); !isNum {
		t.Errorf("cores: want a JSON number, got %T", conf["cores"])
	}
	for _, k := range []string{"memory", "agent", "virtio0", "net0"} {
		if _, isStr := conf[k].(string); !isStr {
			t.Errorf("%s: want a JSON string, got %T", k, conf[k])
		}
	}
}
