package proxmoxsim

import (
	"net/http"
	"path/filepath"
	"testing"
)

// TestDeny: Deny takes one privilege away where PVE's ACLs would: calls
// needing it there get PVE's 403 until granted again, and other calls and
// other VMs are unaffected.
func TestDeny(t *testing.T) {
	t.Parallel()
	access, tok := setUp(t, 9, filepath.Join("testdata", "readme-role-before.sh"))
	s := newSim(t, func(o *Options) { o.Access = access })
	cases := []struct {
		path string
		want int
	}{
		{"/nodes/pve1/qemu/9002/config", http.StatusForbidden},
		{"/nodes/pve1/qemu/9002/status/current", http.StatusForbidden},
		{"/nodes/pve1/qemu/9002/pending", http.StatusForbidden},
	}
	grant := s.Deny("/vms/9002", "VM.Audit")
	for _, tc := range cases {
		a := doAs(t, s, tok, http.MethodGet, tc.path, nil)
		if a.Status != tc.want || a.Reason != "Permission check failed (/vms/9002, VM.Audit)" {
			t.Errorf("GET %s denied: want 403 Permission check failed (/vms/9002, VM.Audit), got %d %q", tc.path, a.Status, a.Reason)
		}
	}
	if a := doAs(t, s, tok, http.MethodGet, "/cluster/resources", nil); a.Status != http.StatusOK {
		t.Errorf("another call was refused: %d %s", a.Status, a.Reason)
	}
	grant()
	for _, tc := range cases {
		if a := doAs(t, s, tok, http.MethodGet, tc.path, nil); a.Status != http.StatusOK {
			t.Errorf("GET %s granted again: %d %s", tc.path, a.Status, a.Reason)
		}
	}
}
