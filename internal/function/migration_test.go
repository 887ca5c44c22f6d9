package function

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/repo"
)

// TestMigratedVM: after a migration in Proxmox the VM is composed where it
// is (nothing for the provider to refuse or move back), status shows that
// node, and the claim is told where its snippet is read from.
func TestMigratedVM(t *testing.T) {
	claims, input := exampleClaims(t)
	c := claims["dns01"]
	before := converge(t, c, input)
	obs := Applied(before)
	vm := observedVM(c.Name)
	_ = unstructured.SetNestedField(vm, "pve2", "status", "atProvider", "nodeName")
	obs[compose.VM]["status"] = vm["status"]
	rsp := run(t, c, input, held(t, repo.XRFor(c), obs))

	got := rsp.GetDesired().GetResources()[compose.VM].GetResource().AsMap()
	if n, _, _ := unstructured.NestedString(got, "spec", "forProvider", "nodeName"); n != "pve2" {
		t.Errorf("the VM's node: want pve2, where Proxmox has it, got %q", n)
	}
	was := before.GetDesired().GetResources()[compose.VM].GetResource().AsMap()
	_ = unstructured.SetNestedField(was, "pve2", "spec", "forProvider", "nodeName")
	if diff := cmp.Diff(was["spec"], got["spec"]); diff != "" {
		t.Errorf("anything but the node changed (-want, +got):\n%s", diff)
	}
	st := rsp.GetDesired().GetComposite().GetResource().AsMap()["status"].(map[string]any)
	if st["node"] != "pve2" {
		t.Errorf("status.node: want pve2, got %v", st["node"])
	}
	if w := warnings(rsp); !strings.Contains(w, "VM 1053 was migrated to node pve2") || !strings.Contains(w, "datastore local") {
		t.Errorf("want a warning about the snippet's datastore, got %q", w)
	}
}
