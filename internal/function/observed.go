package function

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/response"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// ConditionUserData is the condition the function sets on the XR and its
// claim about the user-data snippet, which must exist before the VM is
// made: a failed upload shows here, with the provider's message.
const ConditionUserData = "UserData"

// Reasons of ConditionUserData.
const (
	ReasonUploading    = "Uploading"
	ReasonUploaded     = "Uploaded"
	ReasonUploadFailed = "UploadFailed"
)

// observed is what exists of the machine's resources, as the provider
// reports them (nil: not composed yet).
type observed struct {
	file, vm *unstructured.Unstructured
}

// observe decodes the snippet and the VM (observedOf), and nothing else
// Crossplane observes.
func observe(req *fnv1.RunFunctionRequest) observed {
	var o observed
	res := req.GetObserved().GetResources()
	if r, ok := res[compose.UserData]; ok {
		o.file = &unstructured.Unstructured{Object: observedOf(r.GetResource())}
	}
	if r, ok := res[compose.VM]; ok {
		o.vm = &unstructured.Unstructured{Object: observedOf(r.GetResource())}
	}
	return o
}

func condition(u *unstructured.Unstructured, typ string) map[string]any {
	if u == nil {
		return nil
	}
	// Not copied: callers only read the condition.
	v, _, _ := unstructured.NestedFieldNoCopy(u.Object, "status", "conditions")
	conds, _ := v.([]any)
	for _, c := range conds {
		if cm, ok := c.(map[string]any); ok && cm["type"] == typ {
			return cm
		}
	}
	return nil
}

func isTrue(u *unstructured.Unstructured, typ string) bool {
	c := condition(u, typ)
	return c != nil && c["status"] == "True"
}

// fileReady is the snippet's readiness: its provider's Ready condition.
func (o observed) fileReady() fnv1.Ready {
	if isTrue(o.file, "Ready") {
		return fnv1.Ready_READY_TRUE
	}
	return fnv1.Ready_READY_FALSE
}

// vmReady is the VM's readiness: the provider reports it Ready and the
// guest agent reports an address. Proxmox runs a VM that boots nothing (or
// whose DHCP gets no lease) as happily as a good one; only a guest that
// came up answers its agent, so that is what makes the machine Ready.
func (o observed) vmReady() fnv1.Ready {
	if !isTrue(o.vm, "Ready") {
		return fnv1.Ready_READY_FALSE
	}
	addrs, _, _ := unstructured.NestedFieldNoCopy(o.vm.Object, "status", "atProvider", "ipv4Addresses")
	if len(IPv4Addresses(addrs)) == 0 {
		return fnv1.Ready_READY_FALSE
	}
	return fnv1.Ready_READY_TRUE
}

// vmStatus is the VM's status for Status (nil without a VM).
func (o observed) vmStatus() map[string]any {
	if o.vm == nil {
		return nil
	}
	// Not copied: Status only reads it.
	st, _, _ := unstructured.NestedFieldNoCopy(o.vm.Object, "status")
	m, _ := st.(map[string]any)
	return map[string]any{"status": m}
}

// diskGiB is the size Proxmox reports for the VM's disk on iface (0: none).
func (o observed) diskGiB(iface string) int64 {
	if o.vm == nil {
		return 0
	}
	disks, _, _ := unstructured.NestedSlice(o.vm.Object, "status", "atProvider", "disk")
	for _, d := range disks {
		dm, _ := d.(map[string]any)
		if dm["interface"] != iface {
			continue
		}
		switch n := dm["size"].(type) {
		case int64:
			return n
		case float64:
			return int64(n)
		}
	}
	return 0
}

// userDataCondition tells the claim where the snippet stands. Until it is
// Ready there is no VM; if the provider fails to upload it, the claim shows
// the provider's own message and what to check.
func userDataCondition(rsp *fnv1.RunFunctionResponse, m *machine.Resolved, o observed) {
	id, node := compose.SnippetID(m), m.Proxmox.Node
	if o.fileReady() == fnv1.Ready_READY_TRUE {
		response.ConditionTrue(rsp, ConditionUserData, ReasonUploaded).
			WithMessage(fmt.Sprintf("snippet %s is on node %s", id, node)).TargetCompositeAndClaim()
		return
	}
	var failures []string
	for _, typ := range []string{"Synced", "LastAsyncOperation"} {
		if c := condition(o.file, typ); c != nil && c["status"] == "False" {
			if msg := strings.TrimSpace(fmt.Sprint(c["message"])); msg != "" {
				failures = append(failures, msg)
			}
		}
	}
	if len(failures) == 0 {
		response.ConditionFalse(rsp, ConditionUserData, ReasonUploading).
			WithMessage(fmt.Sprintf("uploading snippet %s to node %s; the VM is created once it exists", id, node)).TargetCompositeAndClaim()
		return
	}
	msg := fmt.Sprintf("cannot upload snippet %s to node %s, so the VM is not created yet: %s. Check the ProviderConfig's SSH access to the node (ssh_username and ssh_private_key in its credentials Secret; README, On your side) and that datastore %s has the snippets content type",
		id, node, strings.Join(failures, "; "), m.SnippetDatastore)
	response.ConditionFalse(rsp, ConditionUserData, ReasonUploadFailed).WithMessage(msg).TargetCompositeAndClaim()
}
