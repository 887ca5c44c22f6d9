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

// bpgCreate is the request sequence bpg v0.111.1 makes for a cloned VM
// with a cloud-init user-data snippet (proxmoxtf/resource/vm/vm.go
// vmCreateClone, then vmCreateCustomDisks and vmCreateStart): the clone;
// deleteIdeDrives removing the template's cloud-init drive (a synchronous
// PUT); the config with the new cloud-init drive, the snippet, the network
// and the sizing (PUT); the disk's resize; the start. Each step is
// returned as it was answered.
func bpgCreate(t *testing.T, s *Sim, tok, id, pool string) []answer {
	t.Helper()
	base := "/nodes/pve1/qemu/" + id
	var out []answer
	step := func(method, path string, form url.Values) bool {
		a := doAs(t, s, tok, method, path, form)
		if a.Status == http.StatusOK {
			var upid string
			if json.Unmarshal(a.Data, &upid) == nil && strings.HasPrefix(upid, "UPID:") {
				if exit := waitTaskAs(t, s, tok, upid); exit != "OK" {
					a.Status, a.Reason = 599, "task: "+exit
				}
			}
		}
		out = append(out, a)
		return a.Status == http.StatusOK
	}
	writeSnippet(t, s, "u-"+id+".yaml", "#cloud-config\n")
	clone := url.Values{"newid": {id}, "full": {"1"}, "name": {"dns01"}, "storage": {"local-lvm"}}
	if pool != "" {
		clone.Set("pool", pool)
	}
	_ = step(http.MethodPost, "/nodes/pve1/qemu/9002/clone", clone) &&
		step(http.MethodPut, base+"/config", url.Values{"delete": {"ide2"}}) &&
		step(http.MethodPut, base+"/config", url.Values{
			"ide2": {"file=local-lvm:cloudinit,media=cdrom"}, "cicustom": {"user=local:snippets/u-" + id + ".yaml"},
			"ipconfig0": {"ip=10.0.10.53/24,gw=10.0.10.1"}, "nameserver": {"10.0.10.1"}, "searchdomain": {"lab.home.arpa"},
			"net0": {"virtio,bridge=vmbr0,tag=10"}, "cores": {"1"}, "cpu": {"x86-64-v2-AES"}, "memory": {"2048"},
			"agent": {"enabled=1"}, "boot": {"order=virtio0"}, "onboot": {"1"}, "ostype": {"l26"},
			"tags": {"dns;core"}, "description": {"dns01"},
		}) &&
		step(http.MethodPut, base+"/resize", url.Values{"disk": {"virtio0"}, "size": {"16G"}}) &&
		step(http.MethodPost, base+"/status/start", nil)
	return out
}

func waitTaskAs(t *testing.T, s *Sim, tok, upid string) string {
	t.Helper()
	m := upidRE.FindStringSubmatch(upid)
	if m == nil {
		t.Fatalf("not a UPID: %q", upid)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		a := doAs(t, s, tok, http.MethodGet, "/nodes/"+m[1]+"/tasks/"+upid+"/status", nil)
		var st struct{ Status, Exitstatus string }
		_ = json.Unmarshal(a.Data, &st)
		if st.Status == "stopped" {
			return st.Exitstatus
		}
		if a.Status != http.StatusOK {
			t.Fatalf("task status: %d %s", a.Status, a.Reason)
		}
		sleepShort()
	}
	t.Fatalf("task %s did not end", upid)
	return ""
}

// TestREADMERoleBefore is the defect a user following the README met on a
// real cluster: its role had no VM.Config.CDROM, and qemu-server checks
// both VM.Config.Cloudinit and VM.Config.CDROM for any change of a
// cloud-init drive, so bpg's removal of the template's drive, right after
// the clone, is refused with a 403 - and a VM is left behind.
func TestREADMERoleBefore(t *testing.T) {
	t.Parallel()
	access, tok := setUp(t, 9, filepath.Join("testdata", "readme-role-before.sh"))
	s := newSim(t, func(o *Options) { o.Access = access })
	steps := bpgCreate(t, s, tok, "1053", "")
	if len(steps) != 2 || steps[0].Status != http.StatusOK {
		t.Fatalf("want the clone to pass and the next call to fail, got %v", steps)
	}
	if got := steps[1]; got.Status != http.StatusForbidden || got.Reason != "Permission check failed (/vms/1053, VM.Config.CDROM)" {
		t.Errorf("deleting the cloud-init drive: want 403 Permission check failed (/vms/1053, VM.Config.CDROM), got %d %q", got.Status, got.Reason)
	}
	if _, found := s.VM(1053); !found {
		t.Error("the clone should be there: the 403 comes after it")
	}
}

// TestDocumentedRole: the README's set-up (deploy/proxmox/token.sh) lets the
// token do all of bpg's create, on PVE 9 and on PVE 8, and read the guest
// agent's addresses with each release's privilege.
func TestDocumentedRole(t *testing.T) {
	t.Parallel()
	for _, major := range []int{9, 8} {
		t.Run("PVE"+itoa(major), func(t *testing.T) {
			access, tok := setUp(t, major, tokenScript(t))
			s := newSim(t, func(o *Options) { o.Access, o.PVE = access, major })
			for i, a := range bpgCreate(t, s, tok, "1053", "homelab") {
				if a.Status != http.StatusOK {
					t.Fatalf("step %d: %d %s %s", i, a.Status, a.Reason, a.Errors)
				}
			}
			waitBooted(t, s, 1053)
			if a := doAs(t, s, tok, http.MethodGet, "/nodes/pve1/qemu/1053/agent/network-get-interfaces", nil); a.Status != http.StatusOK {
				t.Errorf("the agent's addresses: %d %s", a.Status, a.Reason)
			}
			a := doAs(t, s, tok, http.MethodGet, "/nodes/pve1/storage/local/content", url.Values{"content": {"snippets"}})
			if !strings.Contains(string(a.Data), "local:snippets/u-1053.yaml") {
				t.Errorf("the snippet listing (bpg's file read) must show the snippet: %s", a.Data)
			}
		})
	}
}

// TestPrivilegeLists: each release knows its own privileges - a role
// naming PVE 8's VM.Monitor cannot be made on PVE 9, nor PVE 9's
// VM.GuestAgent.Audit on PVE 8 - and the set-up picks the right one.
func TestPrivilegeLists(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		major int
		force string
		want  string
	}{
		{9, "8", "invalid privilege 'VM.Monitor'"},
		{8, "9", "invalid privilege 'VM.GuestAgent.Audit'"},
	} {
		api, err := LoadAPI(tc.major)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := RunPveumScript(api, tokenScript(t), "PVE_MAJOR="+tc.force); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("PVE %d with PVE %s's privileges: want %q, got %v", tc.major, tc.force, tc.want, err)
		}
	}
	a9, _ := setUp(t, 9, tokenScript(t))
	a8, _ := setUp(t, 8, tokenScript(t))
	a9.Pools["homelab"].VMs[1053], a8.Pools["homelab"].VMs[1053] = true, true
	if p := a9.Permissions("crossplane@pve!provider", "/vms/1053"); !p["VM.GuestAgent.Audit"] || p["VM.Monitor"] {
		t.Errorf("PVE 9: want VM.GuestAgent.Audit and no VM.Monitor, got %v", p)
	}
	if p := a8.Permissions("crossplane@pve!provider", "/vms/1053"); !p["VM.Monitor"] {
		t.Errorf("PVE 8: want VM.Monitor, got %v", p)
	}
}

// TestLeastPrivilege: the documented token holds nothing it does not need:
// Datastore.Allocate only on the snippets' datastore, no Sys.* at all, no
// rights over users or permissions.
func TestLeastPrivilege(t *testing.T) {
	t.Parallel()
	a, _ := setUp(t, 9, tokenScript(t))
	tok := "crossplane@pve!provider"
	cases := map[string]struct {
		path, priv string
		want       bool
	}{
		"SnippetsAllocate":    {"/storage/local", "Datastore.Allocate", true},
		"DisksNoAllocate":     {"/storage/local-lvm", "Datastore.Allocate", false},
		"DisksSpace":          {"/storage/local-lvm", "Datastore.AllocateSpace", true},
		"OtherStorage":        {"/storage/ceph", "Datastore.AllocateSpace", false},
		"NoSysAuditNode":      {"/nodes/pve1", "Sys.Audit", false},
		"NoSysAuditRoot":      {"/", "Sys.Audit", false},
		"NoPermissionsModify": {"/access", "Permissions.Modify", false},
		"NoConsole":           {"/vms/1053", "VM.Console", false},
		"HWTypeInPool":        {"/pool/homelab", "VM.Config.HWType", true},
		"NoHWTypeOutside":     {"/vms/4242", "VM.Config.HWType", false},
		"PoolVMs":             {"/pool/homelab", "VM.Config.Disk", true},
		"ReadAnyVM":           {"/vms/4242", "VM.Audit", true},
		"NoChangeOutsidePool": {"/vms/4242", "VM.Config.Options", false},
		"NoAllocateOutside":   {"/vms/4242", "VM.Allocate", false},
		"CloneTemplate":       {"/vms/9002", "VM.Clone", true},
		"NoChangeTemplate":    {"/vms/9002", "VM.Config.Disk", false},
		"NoCloneOthers":       {"/vms/4242", "VM.Clone", false},
		"NoPoolAllocate":      {"/pool/homelab", "Pool.Allocate", false},
		"Bridge":              {"/sdn/zones/localnetwork/vmbr0", "SDN.Use", true},
		"BridgeVLAN":          {"/sdn/zones/localnetwork/vmbr0/10", "SDN.Use", true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := a.Permissions(tok, tc.path)[tc.priv]; got != tc.want {
				t.Errorf("%s on %s: want %v, got %v", tc.priv, tc.path, tc.want, got)
			}
		})
	}
}

// TestPermissionChecks: the checks Proxmox makes beyond its schema, each
// refused for a token that lacks exactly that privilege.
func TestPermissionChecks(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		reason string
		// privs the token's role has on /, beyond what the call needs.
		role         string
		method, path string
		form         url.Values
		wantStatus   int
		want         string
	}{
		"ConfigReadNeedsAudit": {
			reason: "the schema's check: VM.Audit on the VM", role: "VM.Config.CPU",
			method: http.MethodGet, path: "/nodes/pve1/qemu/1053/config", wantStatus: 403, want: "Permission check failed (/vms/1053, VM.Audit)",
		},
		"CoresNeedConfigCPU": {
			reason: "$check_vm_modify_config_perm: cores is a CPU option", role: "VM.Config.Memory",
			method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config", form: url.Values{"cores": {"2"}},
			wantStatus: 403, want: "Permission check failed (/vms/1053, VM.Config.CPU)",
		},
		"IPConfigCloudinitOrNetwork": {
			reason: "ipconfig needs either VM.Config.Cloudinit or VM.Config.Network", role: "VM.Config.Memory",
			method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config", form: url.Values{"ipconfig0": {"ip=dhcp"}},
			wantStatus: 403, want: "Permission check failed (/vms/1053, VM.Config.Cloudinit|VM.Config.Network)",
		},
		"ArgsRootOnly": {
			reason: "an option in no group is root's", role: "VM.Config.Options VM.Config.HWType",
			method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config", form: url.Values{"args": {"-no-reboot"}},
			wantStatus: 500, want: "only root can set 'args' config",
		},
		"CicustomNeedsDatastoreAllocate": {
			reason: "check_volume_access: a snippet needs Datastore.Allocate on its storage", role: "VM.Config.Cloudinit",
			method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config", form: url.Values{"cicustom": {"user=local:snippets/u.yaml"}},
			wantStatus: 500, want: "missing privileges to access local:snippets/u.yaml",
		},
		"NewDiskNeedsSpace": {
			reason: "$check_storage_access: a new disk needs Datastore.AllocateSpace", role: "VM.Config.Disk",
			method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config", form: url.Values{"scsi0": {"local-lvm:4"}},
			wantStatus: 403, want: "Permission check failed (/storage/local-lvm, Datastore.AllocateSpace)",
		},
		"BridgeNeedsSDNUse": {
			reason: "check_bridge_access: a NIC's bridge needs SDN.Use", role: "VM.Config.Network",
			method: http.MethodPut, path: "/nodes/pve1/qemu/1053/config", form: url.Values{"net1": {"virtio,bridge=vmbr0"}},
			wantStatus: 403, want: "Permission check failed (/sdn/zones/localnetwork/vmbr0, SDN.Use)",
		},
		"ResizeNeedsSpace": {
			reason: "resize_vm: the volume's storage needs Datastore.AllocateSpace", role: "VM.Config.Disk",
			method: http.MethodPut, path: "/nodes/pve1/qemu/1053/resize", form: url.Values{"disk": {"virtio0"}, "size": {"+1G"}},
			wantStatus: 403, want: "Permission check failed (/storage/local-lvm, Datastore.AllocateSpace)",
		},
		"SnippetDeleteNeedsAllocate": {
			reason: "content delete: Datastore.Allocate on the storage", role: "Datastore.Audit Datastore.AllocateSpace",
			method: http.MethodDelete, path: "/nodes/pve1/storage/local/content/local:snippets%2Fu.yaml",
			wantStatus: 403, want: "Permission check failed (/storage/local, Datastore.Allocate)",
		},
		"StoragePathNeedsAllocate": {
			reason: "the schema's check on GET /storage/{storage}", role: "Datastore.Audit",
			method: http.MethodGet, path: "/storage/local", wantStatus: 403, want: "Permission check failed (/storage/local, Datastore.Allocate)",
		},
		"AgentNeedsGuestAgentAudit": {
			reason: "PVE 9's guest agent privileges", role: "VM.Monitor",
			method: http.MethodGet, path: "/nodes/pve1/qemu/1053/agent/network-get-interfaces",
			wantStatus: 403, want: "Permission check failed (/vms/1053, VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted)",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := newSim(t)
			clone(t, s, "1053")
			writeSnippet(t, s, "u.yaml", "#cloud-config\n")
			script := filepath.Join(t.TempDir(), "role.sh")
			body := "pveum user add u@pve\npveum role add R --privs \"" + tc.role + "\"\npveum acl modify / --users u@pve --roles R\npveum user token add u@pve tk --privsep 0\n"
			if err := os.WriteFile(script, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			api, _ := LoadAPI(9)
			a, err := RunPveumScript(api, script)
			if tc.role == "VM.Monitor" {
				// PVE 9 has no VM.Monitor: the role cannot even be made.
				if err == nil || !strings.Contains(err.Error(), "invalid privilege 'VM.Monitor'") {
					t.Fatalf("want VM.Monitor refused on PVE 9, got %v", err)
				}
				body = strings.Replace(body, "VM.Monitor", "VM.Audit", 1)
				_ = os.WriteFile(script, []byte(body), 0o644)
				a, err = RunPveumScript(api, script)
			}
			if err != nil {
				t.Fatal(err)
			}
			_ = a.SetTokenSecret("u@pve!tk", "x")
			s.access = a
			got := doAs(t, s, "u@pve!tk=x", tc.method, tc.path, tc.form)
			if got.Status != tc.wantStatus || got.Reason != tc.want {
				t.Errorf("%s: want %d %q, got %d %q %s", tc.reason, tc.wantStatus, tc.want, got.Status, got.Reason, got.Errors)
			}
		})
	}
}

// TestFilteredLists: listings show only what the caller may see, as
// Proxmox filters them: VMs without VM.Audit, snippets without
// Datastore.Allocate on their storage, bridges without SDN.Use or
// SDN.Audit - the node's only bridge, which is how bpg finds the node's
// SSH address.
func TestFilteredLists(t *testing.T) {
	t.Parallel()
	s := newSim(t)
	clone(t, s, "1053")
	writeSnippet(t, s, "u.yaml", "#cloud-config\n")
	script := filepath.Join(t.TempDir(), "role.sh")
	body := "pveum user add u@pve\npveum role add R --privs \"Datastore.Audit\"\npveum acl modify /storage --users u@pve --roles R\npveum user token add u@pve tk --privsep 0\n"
	_ = os.WriteFile(script, []byte(body), 0o644)
	a, err := RunPveumScript(s.API(), script)
	if err != nil {
		t.Fatal(err)
	}
	_ = a.SetTokenSecret("u@pve!tk", "x")
	s.access = a
	for _, tc := range []struct{ reason, path, mustNot string }{
		{"no VM.Audit: no VM in the cluster's resources", "/cluster/resources", "qemu/1053"},
		{"no Datastore.Allocate: no snippet", "/nodes/pve1/storage/local/content", "u.yaml"},
		{"no SDN.Use: no bridge, so no address for bpg's SSH", "/nodes/pve1/network", "vmbr0"},
	} {
		got := doAs(t, s, "u@pve!tk=x", http.MethodGet, tc.path, nil)
		if got.Status != http.StatusOK || strings.Contains(string(got.Data), tc.mustNot) {
			t.Errorf("%s: %d %s", tc.reason, got.Status, got.Data)
		}
	}
}

// TestTaskOwner: a task belongs to the token that started it (the UPID
// names it); another token reads its status only with Sys.Audit on the
// node.
func TestTaskOwner(t *testing.T) {
	t.Parallel()
	s := newSim(t)
	a := do(t, s, http.MethodPost, "/nodes/pve1/qemu/9002/clone", url.Values{"newid": {"1053"}, "full": {"1"}})
	var upid string
	_ = json.Unmarshal(a.Data, &upid)
	if !strings.HasSuffix(upid, ":qmclone:9002:crossplane@pve!provider:") {
		t.Errorf("the UPID must name the type, the id and the token: %s", upid)
	}
	script := filepath.Join(t.TempDir(), "role.sh")
	_ = os.WriteFile(script, []byte("pveum user add other@pve\npveum user token add other@pve tk --privsep 0\n"), 0o644)
	acc, err := RunPveumScript(s.API(), script)
	if err != nil {
		t.Fatal(err)
	}
	_ = acc.SetTokenSecret("other@pve!tk", "x")
	s.access.Users["other@pve"] = acc.Users["other@pve"]
	got := doAs(t, s, "other@pve!tk=x", http.MethodGet, "/nodes/pve1/tasks/"+upid+"/status", nil)
	if got.Status != 403 || got.Reason != "Permission check failed (/nodes/pve1, Sys.Audit)" {
		t.Errorf("another user's task: want 403 Sys.Audit, got %d %q", got.Status, got.Reason)
	}
	if exit := waitTask(t, s, upid); exit != "OK" {
		t.Errorf("the owner reads its task: %q", exit)
	}
}

// TestForeignVMOutOfReach: with the documented token, a VM outside the
// project's pool (made by hand) can be read but not changed, stopped or
// destroyed, and the template can be cloned but not changed.
func TestForeignVMOutOfReach(t *testing.T) {
	t.Parallel()
	access, tok := setUp(t, 9, tokenScript(t))
	s := newSim(t, func(o *Options) { o.Access = access })
	if err := s.HandMadeVM(4242, 9002, "pve1", "my test VM"); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		method, path string
		form         url.Values
		wantStatus   int
		want         string
	}{
		"Read":           {method: http.MethodGet, path: "/nodes/pve1/qemu/4242/config", wantStatus: 200},
		"Change":         {method: http.MethodPut, path: "/nodes/pve1/qemu/4242/config", form: url.Values{"description": {"mine now"}}, wantStatus: 403, want: "Permission check failed (/vms/4242, VM.Config.Disk|VM.Config.CDROM"},
		"Stop":           {method: http.MethodPost, path: "/nodes/pve1/qemu/4242/status/stop", wantStatus: 403, want: "Permission check failed (/vms/4242, VM.PowerMgmt)"},
		"Destroy":        {method: http.MethodDelete, path: "/nodes/pve1/qemu/4242", wantStatus: 403, want: "Permission check failed (/vms/4242, VM.Allocate)"},
		"ChangeTemplate": {method: http.MethodPut, path: "/nodes/pve1/qemu/9002/config", form: url.Values{"description": {"x"}}, wantStatus: 403, want: "Permission check failed (/vms/9002, VM.Config.Disk|VM.Config.CDROM"},
		"CloneOutsidePool": {method: http.MethodPost, path: "/nodes/pve1/qemu/9002/clone", form: url.Values{"newid": {"1054"}, "full": {"1"}},
			// The schema's 'or' (VM.Allocate on the new id, or on the pool
			// named): neither holds, and PVE names no path.
			wantStatus: 403, want: "Permission check failed"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a := doAs(t, s, tok, tc.method, tc.path, tc.form)
			if a.Status != tc.wantStatus || !strings.Contains(a.Reason, tc.want) {
				t.Errorf("%s %s: want %d %q, got %d %q", tc.method, tc.path, tc.wantStatus, tc.want, a.Status, a.Reason)
			}
		})
	}
	if n := s.ConfigWrites(4242); n != 0 {
		t.Errorf("the hand-made VM's config was written %d times", n)
	}
}
