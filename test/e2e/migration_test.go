//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/test/harness"
	"github.com/homelab-infra/homelab-infra/test/proxmoxsim"
)

// TestMigration is the README's design for a cluster of nodes: the snippets
// on a datastore every node mounts (here "shared"). A running machine is
// migrated in Proxmox, as HA or `qm migrate` does: its resource follows it
// to the new node (nothing refused, nothing moved back, nothing written),
// the claim's status names the node, and when the VM is stopped there the
// provider starts it again on that node, where it finds its user-data.
func TestMigration(t *testing.T) {
	t.Parallel()
	testenv.Real(t)
	root := testenv.RepoRoot(t)
	facts, err := readTemplateFacts(root)
	if err != nil {
		t.Fatal(err)
	}
	n := ownNode(t, func(o *proxmoxsim.Options) {
		o.Storages = []proxmoxsim.Storage{
			{ID: "local", Type: "dir", Content: []string{"iso", "vztmpl"}},
			{ID: "local-lvm", Type: "lvmthin", Content: []string{"images", "rootdir"}},
			{ID: "shared", Type: "dir", Content: []string{"snippets"}, Shared: true},
		}
		o.SnippetStorage = "shared"
		api, err := proxmoxsim.LoadAPI(o.PVE)
		if err != nil {
			t.Fatal(err)
		}
		o.Access, err = proxmoxsim.RunPveumScript(api, filepath.Join(root, "deploy", "proxmox", "token.sh"),
			"SNIPPET_STORAGE=shared", fmt.Sprintf("TEMPLATE_VMIDS=%d", facts.TemplateVMID))
		if err != nil {
			t.Fatal(err)
		}
	})
	cp := startOwnStack(t, n, filepath.Join(t.TempDir(), "stack"))
	objs, err := harness.ReadObjects(filepath.Join(root, "crossplane", "composition.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		steps, _, _ := unstructured.NestedSlice(o.Object, "spec", "pipeline")
		for _, s := range steps {
			_ = unstructured.SetNestedField(s.(map[string]any), "shared", "input", "defaults", "snippetDatastore")
		}
		_ = unstructured.SetNestedSlice(o.Object, steps, "spec", "pipeline")
		if err := cp.Apply(ctxFor(t), o); err != nil {
			t.Fatal(err)
		}
	}
	if err := cp.Apply(ctxFor(t), namespaceObject("migrate")); err != nil {
		t.Fatal(err)
	}
	claim, id := machineClaim(t, "docker01", "migrate")
	if err := cp.Apply(ctxFor(t), claim); err != nil {
		t.Fatal(err)
	}
	waitClaimReady(t, cp, "migrate", claim.GetName())
	st := waitSim(t, n, id, "boot on pve1", func(st proxmoxsim.VMState) (bool, string) { return st.Boot.Booted && st.Node == "pve1", st.Node })

	if err := n.Sim.Migrate(int(id), "pve2"); err != nil {
		t.Fatal(err)
	}
	writes := n.Sim.ConfigWrites(int(id))
	waitFor(t, "the claim's status and its VM resource to follow the VM to pve2", func(ctx context.Context) (bool, string, error) {
		c, err := get(ctx, cp, gvkMachine, "migrate", claim.GetName())
		if err != nil {
			return false, err.Error(), nil
		}
		node, _, _ := unstructured.NestedString(c.Object, "status", "node")
		vm, err := composedVM(ctx, cp, "migrate", claim.GetName())
		if err != nil || vm == nil {
			return false, fmt.Sprint("no VM resource ", err), nil
		}
		want, _, _ := unstructured.NestedString(vm.Object, "spec", "forProvider", "nodeName")
		synced := harness.ConditionStatus(vm, "Synced")
		return node == "pve2" && want == "pve2" && synced == "True",
			fmt.Sprintf("claim status.node %q, resource nodeName %q Synced=%s", node, want, synced), nil
	})
	waitClaimReady(t, cp, "migrate", claim.GetName())
	if now, _ := n.Sim.VM(int(id)); now.Node != "pve2" {
		t.Errorf("the VM was moved back to %s", now.Node)
	}
	if w := n.Sim.ConfigWrites(int(id)); w != writes {
		t.Errorf("the migrated VM's config was written %d times", w-writes)
	}

	// A cold start on pve2: the provider starts the stopped VM again, and
	// Proxmox reads its snippet from the datastore as pve2 sees it.
	if err := n.Sim.StopVM(int(id)); err != nil {
		t.Fatal(err)
	}
	after := waitSim(t, n, id, "be started again on pve2 and boot", func(now proxmoxsim.VMState) (bool, string) {
		return now.Starts > st.Starts && now.Boot.Booted && now.Node == "pve2", fmt.Sprintf("%s on %s, %d starts, booted %v %s", now.Status, now.Node, now.Starts, now.Boot.Booted, now.Boot.Problem)
	})
	if after.Boot.UserData == "" || after.Boot.UserData != st.Boot.UserData {
		t.Errorf("the cold start on pve2 read other user-data than the first boot:\n%s", after.Boot.UserData)
	}
}
