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
		"BootDiskKept": {
			reason: "the provider refuses to boot an existing VM from a disk it does not have (a Composition edited later)",
			vm: failed("Synced", "cannot compute the instance diff: cannot boot VM 1053 from scsi0 instead of its boot disk virtio0: bpg would keep virtio0 only as an unused disk and boot a new, empty disk; "+
				"the image's diskInterface in the Composition's function input must be the template's boot disk (virtio0)"),
			want: []string{"instead of its boot disk virtio0", "nix/template/template.json", "no need to delete the claim"},
		},
		"Memory": {
			reason: "the node cannot give the VM its memory (bpg's message: the start task's exit status and log)",
			vm: failed("LastAsyncOperation", "async create failed: failed to create the resource: [{0 VM start task \"UPID:pve1:00001005:000186A5:6935A4F0:qmstart:2001:crossplane@pve!provider:\" failed to complete with exit code: start failed: QEMU exited with code 1\n"+
				"task log:\n  kvm: cannot set up guest memory 'pc.ram': Cannot allocate memory\n  TASK ERROR: start failed: QEMU exited with code 1  []}]"),
			want: []string{"Node pve1 could not give the VM its memory", "spec.class"},
		},
		"Resize": {
			reason: "the disk cannot grow: LVM's message names no 'resize'",
			vm: failed("LastAsyncOperation", "async create failed: failed to create the resource: [{0 Disk resize task \"UPID:pve1:00001004:000186A4:6935A4F0:resize:2001:crossplane@pve!provider:\" failed to complete with exit code: "+
				"error resizing volume '/dev/vmdata/vm-2001-disk-0':   Insufficient free space: 6144 extents needed, but only 1023 available\n"+
				"task log:\n  TASK ERROR: error resizing volume '/dev/vmdata/vm-2001-disk-0':   Insufficient free space: 6144 extents needed, but only 1023 available  []}]"),
			want: []string{"could not be grown", "vgextend", "smaller disk"},
		},
		"ResizeLVM": {
			reason: "LVM's own message, without bpg's task summary around it",
			vm:     failed("Synced", "error resizing volume '/dev/vmdata/vm-2001-disk-0':   Insufficient free space: 6144 extents needed, but only 1023 available"),
			want:   []string{"could not be grown", "vgextend"},
		},
		"ResizeSync": {
			reason: "the shrink refusal is answered at once",
			vm:     failed("Synced", "update failed: received an HTTP 500 response - Reason: shrinking disks is not supported"),
			want:   []string{"could not be grown"},
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
