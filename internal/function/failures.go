package function

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ReasonFailed is ConditionVM's reason when the provider could not make or
// change the VM: the claim shows Proxmox's own message and what to do.
const ReasonFailed = "ProviderFailed"

// vmFailure is why the provider could not make or change the VM, as its
// resource reports it (its Synced or LastAsyncOperation condition), and what
// fixes it; "" when nothing failed. A create that fails after the clone
// leaves the VM in Proxmox and in the resource (its external name is the VM
// id), so the provider goes on from there once the cause is fixed: the
// claim is never deleted for it.
func vmFailure(vm *unstructured.Unstructured, vmID int64, node string) string {
	var msgs []string
	for _, typ := range []string{"LastAsyncOperation", "Synced"} {
		c := condition(vm, typ)
		if c == nil || c["status"] != "False" {
			continue
		}
		msg := strings.TrimSpace(fmt.Sprint(c["message"]))
		if msg == "" || msg == "<nil>" || strings.Contains(msg, notExist) {
			continue
		}
		dup := false
		for _, m := range msgs {
			dup = dup || strings.Contains(m, msg) || strings.Contains(msg, m)
		}
		if !dup {
			msgs = append(msgs, msg)
		}
	}
	if len(msgs) == 0 {
		return ""
	}
	all := strings.Join(msgs, "; ")
	return fmt.Sprintf("the provider could not make or change VM %d: %s. %s", vmID, all, failureFix(all, node))
}

// failureFix is what to do about a provider failure, by Proxmox's message.
// Each fix is made where it is and the provider retries by itself.
func failureFix(msg, node string) string {
	const retry = " The provider retries on its own; there is no need to delete the claim."
	switch {
	case strings.Contains(msg, "Permission check failed"):
		return "The API token lacks the privilege Proxmox names: grant it as deploy/proxmox/token.sh does (README, The API token)." + retry
	case strings.Contains(msg, "invalid bootorder") || strings.Contains(msg, "instead of its boot disk"):
		return "The boot order names a disk the VM does not have: the image's diskInterface in the Composition's function input must be the template's boot disk (nix/template/template.json)." + retry
	case strings.Contains(msg, "Cannot allocate memory") || strings.Contains(msg, "out of memory"):
		return "Node " + node + " could not give the VM its memory: pick a smaller spec.class, or free memory on the node." + retry
	case strings.Contains(msg, "Insufficient free space") || strings.Contains(msg, "error resizing volume") ||
		strings.Contains(msg, "resize") || strings.Contains(msg, "shrinking disks"):
		// LVMPlugin's volume_resize says "error resizing volume" (no
		// "resize" in it), with lvextend's "Insufficient free space".
		return "The disk could not be grown to the class's size: give its datastore the space (on LVM, vgextend its volume group), or pick a spec.class with a smaller disk." + retry
	}
	return "Fix what Proxmox says." + retry
}
