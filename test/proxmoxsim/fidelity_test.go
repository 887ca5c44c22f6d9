package proxmoxsim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// upidOf is the UPID an answer carries.
func upidOf(t *testing.T, a answer) string {
	t.Helper()
	var upid string
	if err := json.Unmarshal(a.Data, &upid); err != nil || !strings.HasPrefix(upid, "UPID:") {
		t.Fatalf("want a task, got %d %q %s", a.Status, a.Reason, a.Data)
	}
	return upid
}

// TestBootUnset: with no 'boot' option qemu-server falls back to the
// legacy order "cdn", where the hard disk is the one 'bootdisk' names: a
// clone whose template sets neither boots nothing, as on a real node.
func TestBootUnset(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		reason     string
		template   string
		config     url.Values
		wantDevice string
	}{
		"NoBootNoBootdisk": {reason: "no order, no bootdisk: no disk has a boot index", template: ""},
		"Bootdisk":         {reason: "legacy c is the bootdisk", template: "", config: url.Values{"bootdisk": {"virtio0"}}, wantDevice: "virtio0"},
		"Order":            {reason: "an order names the disk", template: "order=virtio0", wantDevice: "virtio0"},
		"LegacyNoDisk":     {reason: "legacy 'dn' never boots a disk", template: "", config: url.Values{"boot": {"dn"}, "bootdisk": {"virtio0"}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := newSim(t, func(o *Options) { o.Templates[0].Boot = tc.template })
			clone(t, s, "1053")
			if tc.config != nil {
				ok(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/config", tc.config)
			}
			ok(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/status/start", nil)
			st := vmState(t, s, 1053)
			if st.Boot.Device != tc.wantDevice || (tc.wantDevice == "") != strings.Contains(st.Boot.Problem, "no bootable disk") {
				t.Errorf("%s: want boot %q, got %q (%s)", tc.reason, tc.wantDevice, st.Boot.Device, st.Boot.Problem)
			}
		})
	}
}

// TestChecksInTheTask: the asynchronous config update (POST) answers its
// task at once; what qemu-server checks inside the update fails the task,
// not the call - the drive privileges and the boot order - while the
// synchronous PUT answers the same failure.
func TestChecksInTheTask(t *testing.T) {
	t.Parallel()
	s := newSim(t)
	clone(t, s, "1053")
	bad := url.Values{"boot": {"order=scsi3"}}
	a := do(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/config", bad)
	if a.Status != 200 {
		t.Fatalf("POST config: want the task, got %d %q", a.Status, a.Reason)
	}
	if exit := waitTask(t, s, upidOf(t, a)); exit != "invalid bootorder: device 'scsi3' does not exist'" {
		t.Errorf("the task must fail with qemu-server's message, got %q", exit)
	}
	if a := do(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/config", bad); a.Status != 500 || a.Reason != "invalid bootorder: device 'scsi3' does not exist'" {
		t.Errorf("PUT config: want 500 invalid bootorder, got %d %q", a.Status, a.Reason)
	}
	if got := vmState(t, s, 1053).Config["boot"]; got != "order=virtio0" {
		t.Errorf("a refused boot order must not be stored, got %q", got)
	}
}

// TestWarnings: deleting an option the VM does not have is a warning in
// the update task, whose status is then "WARNINGS: 1".
func TestWarnings(t *testing.T) {
	t.Parallel()
	s := newSim(t)
	clone(t, s, "1053")
	a := do(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/config", url.Values{"delete": {"sshkeys"}})
	upid := upidOf(t, a)
	if exit := waitTask(t, s, upid); exit != "WARNINGS: 1" {
		t.Errorf("want WARNINGS: 1, got %q", exit)
	}
	log := string(do(t, s, http.MethodGet, "/nodes/pve1/tasks/"+upid+"/log", nil).Data)
	if !strings.Contains(log, "WARN: cannot delete 'sshkeys' - not set in current configuration!") || !strings.Contains(log, "TASK WARNINGS: 1") {
		t.Errorf("the task log: %s", log)
	}
}

// TestRebootOfAHungGuest: a reboot is a shutdown without force, then a
// start: a guest that does not shut down fails the task after the timeout,
// keeps running, and a change that needs the reboot stays pending.
func TestRebootOfAHungGuest(t *testing.T) {
	t.Parallel()
	s := newSim(t)
	clone(t, s, "1053")
	ok(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/status/start", nil)
	waitBooted(t, s, 1053)
	ok(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/config", url.Values{"cores": {"4"}})
	st := vmState(t, s, 1053)
	if st.Pending["cores"] != "4" || st.Config["cores"] != "4" || st.Boot.Cores != 2 {
		t.Fatalf("cores on a running VM: want pending 4 (shown in the config), the guest on 2; got pending %v, config %s, guest %d", st.Pending, st.Config["cores"], st.Boot.Cores)
	}
	if err := s.HaltGuest(1053); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	a := do(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/status/reboot", url.Values{"timeout": {"1"}})
	if exit := waitTask(t, s, upidOf(t, a)); exit != "VM quit/powerdown failed - got timeout" || time.Since(start) < time.Second {
		t.Errorf("want the reboot to fail after its timeout, got %q after %s", exit, time.Since(start))
	}
	st = vmState(t, s, 1053)
	if st.Status != "running" || st.Pending["cores"] != "4" || st.Starts != 1 {
		t.Errorf("after the failed reboot: want running, cores still pending, no new start; got %s, %v, %d starts", st.Status, st.Pending, st.Starts)
	}
	ok(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/status/stop", nil)
	ok(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/status/start", nil)
	if st := vmState(t, s, 1053); len(st.Pending) != 0 || st.Boot.Cores != 4 {
		t.Errorf("a stop and start applies the change: pending %v, guest %d cores", st.Pending, st.Boot.Cores)
	}
}

// TestHotplug: on a running VM the NIC's VLAN and the tags take effect at
// once; cores wait for the next cold start.
func TestHotplug(t *testing.T) {
	t.Parallel()
	s := newSim(t)
	clone(t, s, "1053")
	ok(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/status/start", nil)
	net0 := vmState(t, s, 1053).Config["net0"]
	ok(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/config", url.Values{
		"net0": {net0 + ",tag=20"}, "tags": {"Web;core;web"}, "cores": {"3"},
	})
	st := vmState(t, s, 1053)
	if _, p := st.Pending["net0"]; p {
		t.Errorf("a VLAN change hotplugs, got it pending")
	}
	if st.Config["tags"] != "core;web" || st.Pending["tags"] != "" {
		t.Errorf("tags: want applied and stored sorted, lower-case, once each (get_unique_tags), got %q pending %q", st.Config["tags"], st.Pending["tags"])
	}
	if st.Pending["cores"] != "3" {
		t.Errorf("cores: want pending, got %v", st.Pending)
	}
}

// TestContentDelete: deleting a snippet is an 'imgdel' task.
func TestContentDelete(t *testing.T) {
	t.Parallel()
	s := newSim(t)
	writeSnippet(t, s, "u.yaml", "#cloud-config\n")
	a := do(t, s, http.MethodDelete, "/nodes/pve1/storage/local/content/local:snippets%2Fu.yaml", nil)
	upid := upidOf(t, a)
	if !strings.Contains(upid, ":imgdel:local:") {
		t.Errorf("want an imgdel task on storage local, got %s", upid)
	}
	if exit := waitTask(t, s, upid); exit != "OK" {
		t.Errorf("the deletion: %q", exit)
	}
	if _, err := os.Stat(filepath.Join(s.SnippetsDir(), "u.yaml")); !os.IsNotExist(err) {
		t.Errorf("the snippet is still there: %v", err)
	}
}

// TestCluster: two nodes, each with its own local storages; a VM is on
// one node, and a call proxied to the other does not find it.
func TestCluster(t *testing.T) {
	t.Parallel()
	s := newSim(t, func(o *Options) {
		o.Nodes = []Node{{Name: "pve1", Address: "127.0.0.2"}, {Name: "pve2", Address: "127.0.0.3"}}
	})
	a := do(t, s, http.MethodPost, "/nodes/pve1/qemu/9002/clone", url.Values{"newid": {"1053"}, "full": {"1"}, "target": {"pve2"}})
	if exit := waitTask(t, s, upidOf(t, a)); exit != "OK" {
		t.Fatalf("clone to pve2: %s", exit)
	}
	if st := vmState(t, s, 1053); st.Node != "pve2" {
		t.Errorf("want the clone on pve2, got %q", st.Node)
	}
	if a := do(t, s, http.MethodGet, "/nodes/pve1/qemu/1053/config", nil); a.Status != 500 || a.Reason != "Configuration file 'nodes/pve1/qemu-server/1053.conf' does not exist" {
		t.Errorf("the VM through pve1: %d %q", a.Status, a.Reason)
	}
	if a := do(t, s, http.MethodGet, "/nodes/pve2/qemu/1053/config", nil); a.Status != 200 {
		t.Errorf("the VM through pve2: %d %q", a.Status, a.Reason)
	}
	res := string(do(t, s, http.MethodGet, "/cluster/resources", url.Values{"type": {"vm"}}).Data)
	if !strings.Contains(res, `"node":"pve2","vmid":1053`) && !strings.Contains(res, `"node":"pve2"`) {
		t.Errorf("the cluster's resources must place 1053 on pve2: %s", res)
	}
	// Node-local snippets: pve2's start reads pve2's copy.
	ok(t, s, http.MethodPut, "/nodes/pve2/qemu/1053/config", url.Values{"cicustom": {"user=local:snippets/u.yaml"}})
	writeSnippet(t, s, "u.yaml", "#cloud-config\n") // pve1's local storage
	a = do(t, s, http.MethodPost, "/nodes/pve2/qemu/1053/status/start", nil)
	if exit := waitTask(t, s, upidOf(t, a)); !strings.Contains(exit, "can't open") {
		t.Errorf("a snippet on pve1 only: want pve2's start to fail, got %q", exit)
	}
	if a := do(t, s, http.MethodGet, "/nodes/pve3/qemu", nil); a.Status != 500 || !strings.Contains(a.Reason, "hostname lookup 'pve3' failed") {
		t.Errorf("an unknown node: %d %q", a.Status, a.Reason)
	}
}

// TestREADMEStep2Before: the README's step 2 used to add a cloud-init drive
// after qmrestore, but nixpkgs' image already carries one (the template
// the simulator holds has it on ide2): allocating vm-9002-cloudinit again
// fails.
func TestREADMEStep2Before(t *testing.T) {
	t.Parallel()
	s := newSim(t)
	a := do(t, s, http.MethodPut, "/nodes/pve1/qemu/9002/config", url.Values{"ide2": {"local-lvm:cloudinit"}})
	if a.Status != 500 || !strings.Contains(a.Reason, `Logical Volume "vm-9002-cloudinit" already exists`) {
		t.Errorf("qm set 9002 --ide2 local-lvm:cloudinit: want it refused, got %d %q", a.Status, a.Reason)
	}
}
