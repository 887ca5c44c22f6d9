//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/function"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// TestForeignVMNeverTakenOver: a claim whose VM id is a VM no claim made
// (made by hand, outside the project's pool) reads it and nothing more: the
// claim says why it is not this claim's, the VM is never rewritten,
// rebooted or stopped, and deleting the claim leaves it as it was.
func TestForeignVMNeverTakenOver(t *testing.T) {
	t.Parallel()
	cp, n := stackWithNode(t)
	facts, err := readTemplateFacts(testenv.RepoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t, cp, "foreign")
	claim, id := machineClaim(t, "docker01", ns)
	if err := n.Sim.HandMadeVM(int(id), facts.TemplateVMID, clusterNodes[0], "my test VM"); err != nil {
		t.Fatal(err)
	}
	if err := cp.Apply(ctxFor(t), claim); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the claim to say the VM is not its", claimCondition(cp, ns, claim.GetName(), function.ConditionVM, "False",
		fmt.Sprintf("VM %d exists in Proxmox", id)))
	time.Sleep(5 * time.Second) // a few more reconciles: still nothing written

	if err := cp.Client.Delete(ctxFor(t), claim); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the claim to be gone", func(ctx context.Context) (bool, string, error) {
		_, err := get(ctx, cp, gvkMachine, ns, claim.GetName())
		return err != nil, "still there", nil
	})
	st, found := n.Sim.VM(int(id))
	if !found {
		t.Fatalf("the hand-made VM %d was destroyed", id)
	}
	if w := n.Sim.ConfigWrites(int(id)); w != 0 || st.Status != "running" || st.Starts != 0 {
		t.Errorf("the hand-made VM %d was touched: %d config writes, status %s, %d starts", id, w, st.Status, st.Starts)
	}
	vmPath := fmt.Sprintf("/qemu/%d", id)
	for _, r := range n.Sim.Requests() {
		if r.Method != http.MethodGet && (strings.HasSuffix(r.Path, vmPath) || strings.Contains(r.Path, vmPath+"/")) {
			t.Errorf("a write to the hand-made VM: %s %s -> %d %s", r.Method, r.Path, r.Status, r.Error)
		}
	}
}
