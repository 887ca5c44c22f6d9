package function

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/response"
)

// followNode composes the VM on the node Proxmox reports it on. A VM
// migrated in Proxmox (by HA, for maintenance, by `qm migrate`) stays there:
// bpg reads the VM's node from the cluster, and a resource still asking for
// the old node would be refused by the provider on every reconcile (bpg
// replaces a VM whose node changes unless told to migrate it, and the
// provider never replaces one), or would move the VM back behind HA's
// back. It returns the node the VM moved to ("" when it did not).
func followNode(vm, obsVM *unstructured.Unstructured) string {
	want, _, _ := unstructured.NestedString(vm.Object, "spec", "forProvider", "nodeName")
	at := movedTo(want, obsVM)
	if at != "" {
		_ = unstructured.SetNestedField(vm.Object, at, "spec", "forProvider", "nodeName")
	}
	return at
}

// movedTo is the node Proxmox reports the VM on when it is not want, the
// node composed ("" otherwise).
func movedTo(want string, obsVM *unstructured.Unstructured) string {
	if obsVM == nil {
		return ""
	}
	at, _, _ := unstructured.NestedString(obsVM.Object, "status", "atProvider", "nodeName")
	if at == "" || at == want {
		return ""
	}
	return at
}

// migrationWarning tells the claim that its VM now runs on another node than
// its snippet's: the snippet is read at every cold start, from the
// datastore as the VM's node sees it.
// fileNode and ds are the snippet's node and datastore.
func migrationWarning(rsp *fnv1.RunFunctionResponse, vmID int64, node, fileNode, ds string) {
	if node == "" || fileNode == "" || node == fileNode {
		return
	}
	response.Warning(rsp, fmt.Errorf("VM %d was migrated to node %s; its user-data snippet was written to datastore %s through node %s, and Proxmox reads it at every cold start: unless %s is a datastore every node mounts (README, Migration), the VM's next cold start on %s fails. Migrate it back, or copy the snippet to the same path on %s", vmID, node, ds, fileNode, ds, node, node)).TargetCompositeAndClaim()
}
