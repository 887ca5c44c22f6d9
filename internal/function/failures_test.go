package function

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestVMFailure: a failure after the clone is shown on the claim with
// Proxmox's message (as the provider reports it) and what fixes it, and
// never asks for the claim to be deleted.
func TestVMFailure(t *testing.T) {
	failed := func(typ, msg string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{"conditions": []any{
			map[string]any{"type": typ, "status": "False", "reason": "ApplyFailure", "message": msg},
		}}}}
	}
	cases := map[string]struct {
		reason string
		vm     *unstructured.Unstructured
		want   []string // "" parts: no failure
	}{
		"None":   {reason: "nothing failed", vm: &unstructured.Unstructured{Object: map[string]any{}}},
		"Absent": {reason: "an Observe-only VM whose id is free is no failure", vm: failed("Synced", notExist)},
		"Forbidden": {
			reason: "a privilege the token lacks",
			vm:     failed("LastAsyncOperation", "async create failed: failed to create the resource: [{0 error updating VM: received an HTTP 403 response - Reason: Permission check failed (/vms/1053, VM.Config.CDROM)  []}]"),
			want:   []string{"VM 1053", "Permission check failed (/vms/1053, VM.Config.CDROM)", "deploy/proxmox/token.sh", "no need to delete the claim"},
		},
		"BootOrder": {
			reason: "the image's disk interface is not the template's",
			vm:     failed("Synced", "update failed: error waiting for VM update: task failed: invalid bootorder: device 'scsi0' does not exist'"),
			want:   []string{"invalid bootorder", "diskInterface", "nix/template/template.json"},
		},
		"Memory": {
			reason: "the node cannot give the VM its memory",
			vm:     failed("LastAsyncOperation", "failed to start VM: start failed: QEMU exited with code 1: kvm: cannot set up guest memory 'pc.ram': Cannot allocate memory"),
			want:   []string{"Node pve1 could not give the VM its memory", "spec.class"},
		},
		"Resize": {
			reason: "the disk cannot grow",
			vm:     failed("LastAsyncOperation", "error resizing disk: received an HTTP 500 response - Reason: resize failed: not enough free space"),
			want:   []string{"disk could not be grown", "Datastore.AllocateSpace"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := vmFailure(tc.vm, 1053, "pve1")
			if len(tc.want) == 0 && got != "" {
				t.Errorf("%s: want no failure, got %q", tc.reason, got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%s: want %q in %q", tc.reason, w, got)
				}
			}
		})
	}
}
