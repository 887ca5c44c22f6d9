package proxmoxsim

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// twoNodes is a cluster of pve1 and pve2 with node-local storages (local,
// local-lvm) and a directory storage every node mounts (shared, e.g. NFS).
func twoNodes(o *Options) {
	o.Nodes = []Node{{Name: "pve1", Address: "127.0.0.2"}, {Name: "pve2", Address: "127.0.0.3"}}
	o.Storages = []Storage{
		{ID: "local", Type: "dir", Content: []string{"iso", "snippets", "vztmpl"}},
		{ID: imageStorage, Type: "lvmthin", Content: []string{"images", "rootdir"}},
		{ID: "shared", Type: "dir", Content: []string{"snippets"}, Shared: true},
	}
}

// runningWithSnippet is VM 1053 on pve1, cloned, with a cloud-init drive
// and a user-data snippet on storage, started.
func runningWithSnippet(t *testing.T, s *Sim, storage string) {
	t.Helper()
	clone(t, s, "1053")
	if err := os.WriteFile(filepath.Join(s.SnippetsDirOf("pve1", storage), "u.yaml"), []byte("#cloud-config\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ok(t, s, http.MethodPut, "/nodes/pve1/qemu/1053/config", url.Values{"cicustom": {"user=" + storage + ":snippets/u.yaml"}})
	ok(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/status/start", nil)
}

// TestMigrateRules: qemu-server's checks before a migration moves anything.
func TestMigrateRules(t *testing.T) {
	t.Parallel()
	s := newSim(t, twoNodes)
	runningWithSnippet(t, s, "local")
	cases := map[string]struct {
		form       url.Values
		wantStatus int
		want       string
	}{
		"Offline":   {form: url.Values{"target": {"pve2"}}, wantStatus: 500, want: "can't migrate running VM without --online"},
		"LocalNode": {form: url.Values{"target": {"pve1"}, "online": {"1"}}, wantStatus: 400, want: "target: target is local node."},
		"NoNode":    {form: url.Values{"target": {"pve3"}, "online": {"1"}}, wantStatus: 500, want: "no such cluster node 'pve3'"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a := do(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/migrate", tc.form)
			if got := a.Reason + a.Errors; a.Status != tc.wantStatus || !strings.Contains(got, tc.want) {
				t.Errorf("want %d %q, got %d %q", tc.wantStatus, tc.want, a.Status, got)
			}
		})
	}
	a := do(t, s, http.MethodPost, "/nodes/pve1/qemu/1053/migrate", url.Values{"target": {"pve2"}, "online": {"1"}})
	if exit := waitTask(t, s, upidOf(t, a)); !strings.Contains(exit, "can't migrate VM - check log") {
		t.Errorf("a running VM's local disk without with-local-disks: want the task to fail, got %q", exit)
	}
	if st := vmState(t, s, 1053); st.Node != "pve1" {
		t.Errorf("a refused migration moved the VM to %s", st.Node)
	}
}

// TestMigrateSnippets: a migration moves the VM, its disks and its
// cloud-init drive, not its cicustom snippet. On a node-local datastore the
// snippet stays behind and the next cold start on the target fails; on a
// datastore every node mounts it starts.
func TestMigrateSnippets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		storage string
		want    string // the cold start's failure, "" for none
	}{
		{"local", "can't open '" + "%s/snippets/u.yaml' - No such file or directory"},
		{"shared", ""},
	} {
		t.Run(tc.storage, func(t *testing.T) {
			s := newSim(t, twoNodes)
			runningWithSnippet(t, s, tc.storage)
			if err := s.Migrate(1053, "pve2"); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			st := vmState(t, s, 1053)
			if st.Node != "pve2" || st.Status != "running" {
				t.Fatalf("want 1053 running on pve2, got %s on %s", st.Status, st.Node)
			}
			ok(t, s, http.MethodPost, "/nodes/pve2/qemu/1053/status/stop", nil)
			a := do(t, s, http.MethodPost, "/nodes/pve2/qemu/1053/status/start", nil)
			exit := waitTask(t, s, upidOf(t, a))
			want := "OK"
			if tc.want != "" {
				want = strings.Replace(tc.want, "%s", s.StoragePath(tc.storage), 1)
			}
			if exit != want {
				t.Errorf("cold start on pve2: want %q, got %q", want, exit)
			}
		})
	}
}

// TestMigrateNeedsPrivilege: the documented token may not migrate (the
// schema's VM.Migrate): the provider never moves a VM.
func TestMigrateNeedsPrivilege(t *testing.T) {
	t.Parallel()
	access, tok := setUp(t, 9, tokenScript(t))
	s := newSim(t, twoNodes, func(o *Options) { o.Access = access })
	a := doAs(t, s, tok, http.MethodPost, "/nodes/pve1/qemu/9002/migrate", url.Values{"target": {"pve2"}})
	if a.Status != http.StatusForbidden || a.Reason != "Permission check failed (/vms/9002, VM.Migrate)" {
		t.Errorf("want 403 Permission check failed (/vms/9002, VM.Migrate), got %d %q", a.Status, a.Reason)
	}
}
