//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/function"
	"github.com/homelab-infra/homelab-infra/test/proxmoxsim"
)

// TestFailureAfterClone: Proxmox refuses a call after the clone, here the
// token's role missing VM.Config.CDROM (as the README's former role did):
// the VM exists, and the claim's VM condition names Proxmox's refusal and
// the fix. Once the administrator fixes the role, the provider goes on with
// the same VM, without a second clone and without the claim being deleted.
func TestFailureAfterClone(t *testing.T) {
	t.Parallel()
	n := ownNode(t, nil)
	cp := startOwnStack(t, n, filepath.Join(t.TempDir(), "stack"))
	// PVE 9's HomelabVM (deploy/proxmox/token.sh) without VM.Config.CDROM.
	if err := n.Sim.Pveum("role", "modify", "HomelabVM", "--privs", "VM.Allocate VM.Audit VM.PowerMgmt "+
		"VM.Config.CPU VM.Config.Memory VM.Config.Disk VM.Config.Cloudinit VM.Config.Network VM.Config.Options VM.Config.HWType "+
		"VM.GuestAgent.Audit Pool.Audit"); err != nil {
		t.Fatal(err)
	}
	if err := cp.Apply(ctxFor(t), namespaceObject("failure")); err != nil {
		t.Fatal(err)
	}
	claim, id := machineClaim(t, "docker01", "failure")
	if err := cp.Apply(ctxFor(t), claim); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the claim to name Proxmox's refusal and the fix", claimCondition(cp, "failure", claim.GetName(),
		function.ConditionVM, "False", fmt.Sprintf("Permission check failed (/vms/%d, VM.Config.CDROM)", id)))
	waitFor(t, "the claim to say how to fix it", claimCondition(cp, "failure", claim.GetName(),
		function.ConditionVM, "False", "grant it as deploy/proxmox/token.sh does"))
	if _, found := n.Sim.VM(int(id)); !found {
		t.Fatalf("VM %d should exist: the refusal comes after the clone", id)
	}

	if err := n.Sim.Pveum("role", "modify", "HomelabVM", "--privs", "VM.Config.CDROM", "--append", "1"); err != nil {
		t.Fatal(err)
	}
	waitClaimReady(t, cp, "failure", claim.GetName())
	st := waitSim(t, n, id, "boot", func(st proxmoxsim.VMState) (bool, string) { return st.Boot.Booted, st.Status })
	if st.Clones != 1 {
		t.Errorf("VM %d was cloned %d times; the provider should go on with the first", id, st.Clones)
	}
}
