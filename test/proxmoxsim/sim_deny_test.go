package proxmoxsim

import (
	"net/http"
	"strings"
	"testing"
)

// TestDeny: a denied call is answered 403 with PVE's permission message
// until granted, and other calls are untouched.
func TestDeny(t *testing.T) {
	s, err := Start(Options{Dir: t.TempDir(), Templates: []Template{{VMID: 9002, Name: "t", DiskInterface: "virtio0", DiskGiB: 8}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	grant := s.Deny("GET", `/nodes/pve1/qemu/\d+/config`, "/vms/9002", "VM.Audit")
	if got := s.denied("GET", "/api2/json/nodes/pve1/qemu/9002/config"); got == nil || got.code != http.StatusForbidden || !strings.Contains(got.msg, "Permission check failed (/vms/9002, VM.Audit)") {
		t.Errorf("a denied call: want 403 Permission check failed (/vms/9002, VM.Audit), got %v", got)
	}
	if got := s.denied("GET", "/api2/json/nodes/pve1/qemu/9002/status/current"); got != nil {
		t.Errorf("another call was denied: %v", got)
	}
	grant()
	if got := s.denied("GET", "/api2/json/nodes/pve1/qemu/9002/config"); got != nil {
		t.Errorf("a granted call is still denied: %v", got)
	}
}
