package proxmoxsim

import (
	"net/http"
	"net/url"
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

// TestDenyOverOwnEntry: where the token has an ACL entry on the very path
// (a role granting VM.Clone on /vms/9002, as a set-up that lets a token
// clone only its template has), Deny still takes the privilege away: the
// entries of one path add up in PVE, so a second entry alone would leave
// VM.Clone granted and the clone would go on.
func TestDenyOverOwnEntry(t *testing.T) {
	t.Parallel()
	access, tok := setUp(t, 9, filepath.Join("testdata", "readme-role-before.sh"))
	api, err := LoadAPI(9)
	if err != nil {
		t.Fatal(err)
	}
	if err := access.Pveum(api, "acl", "modify", "/vms/9002", "--users", "crossplane@pve", "--roles", "HomelabMachines"); err != nil {
		t.Fatal(err)
	}
	s := newSim(t, func(o *Options) { o.Access = access })
	form := url.Values{"newid": {"1100"}, "full": {"1"}}
	grant := s.Deny("/vms/9002", "VM.Clone")
	if a := doAs(t, s, tok, http.MethodPost, "/nodes/pve1/qemu/9002/clone", form); a.Status != http.StatusForbidden || a.Reason != "Permission check failed (/vms/9002, VM.Clone)" {
		t.Errorf("clone with VM.Clone denied: want 403 Permission check failed (/vms/9002, VM.Clone), got %d %q", a.Status, a.Reason)
	}
	if a := doAs(t, s, tok, http.MethodGet, "/nodes/pve1/qemu/9002/config", nil); a.Status != http.StatusOK {
		t.Errorf("the template's config (VM.Audit, kept): %d %s", a.Status, a.Reason)
	}
	grant()
	grant()
	if a := doAs(t, s, tok, http.MethodPost, "/nodes/pve1/qemu/9002/clone", form); a.Status != http.StatusOK {
		t.Errorf("clone granted again: %d %s", a.Status, a.Reason)
	}
}
