//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/test/harness"
	"github.com/homelab-infra/homelab-infra/test/proxmoxsim"
)

// TestProxmoxRefusesACall: the token lacks VM.Clone on the template, so
// Proxmox answers 403 to the provider's clone. The resource's conditions
// name Proxmox's refusal, nothing is made, and once the privilege is
// granted the same resource creates its VM. It runs alone (not parallel):
// the refusal covers every clone of the shared node's template.
func TestProxmoxRefusesACall(t *testing.T) {
	cp, n := stackWithNode(t)
	id := vmIDs.Add(1)
	grant := n.Sim.Deny("/vms/9002", "VM.Clone")
	defer grant()
	vm := bareVM("default", id)
	if err := cp.Apply(ctxFor(t), vm); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteAndWait(t, cp, n, vm, id) })
	want := "Permission check failed (/vms/9002, VM.Clone)"
	waitFor(t, "a condition naming Proxmox's refusal", func(ctx context.Context) (bool, string, error) {
		got, err := get(ctx, cp, gvkVM, "", vm.GetName())
		if err != nil {
			return false, err.Error(), nil
		}
		return strings.Contains(conditionsString(got), want), conditionsString(got), nil
	})
	if _, ok := n.Sim.VM(int(id)); ok {
		t.Errorf("VM %d exists although Proxmox refused its clone", id)
	}
	grant()
	waitVMReady(t, cp, vm.GetName())
	if _, ok := n.Sim.VM(int(id)); !ok {
		t.Errorf("VM %d is Ready but not in Proxmox", id)
	}
}

// TestProviderRestart kills the provider (SIGKILL) while Proxmox runs the
// clone task of a new VM, or its disk resize, and starts it again. The VM is
// made once (one clone, no other VM), keeps its disk at the size asked for,
// and the resource converges to Ready.
func TestProviderRestart(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		reason string
		// during is the call whose task the provider dies in.
		method, suffix string
	}{
		"MidClone":  {reason: "killed while the clone task runs", method: "POST", suffix: "/qemu/9002/clone"},
		"MidResize": {reason: "killed while the disk resize task runs", method: "PUT", suffix: "/resize"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			// Tasks long enough to die in the middle of one.
			n, err := startNode(testenv.RepoRoot(t), filepath.Join(dir, "node"), func(o *proxmoxsim.Options) { o.TaskTime = 15 * time.Second })
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(n.Stop)
			cp := startOwnStack(t, n, filepath.Join(dir, "stack"))
			id := vmIDs.Add(1)
			vm := bareVM("default", id)
			// A disk larger than the template's, so the create resizes it.
			_ = unstructured.SetNestedSlice(vm.Object, []any{map[string]any{
				"interface": "virtio0", "datastoreId": "local-lvm", "size": int64(16),
			}}, "spec", "forProvider", "disk")
			if err := cp.Apply(ctxFor(t), vm); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the provider to call "+tc.method+" "+tc.suffix, func(context.Context) (bool, string, error) {
				return countRequests(n, tc.method, tc.suffix) > 0, n.Sim.RequestLog(3), nil
			})
			if err := cp.RestartProvider(ctxFor(t)); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: provider restarted", tc.reason)
			waitVMReady(t, cp, vm.GetName())
			// Synced says an update has started, not that it is done (Upjet's
			// async controllers, upjet pkg/controller/external_async_tfpluginsdk.go:183
			// at v2.2.0): the disk reaching its size is the convergence.
			waitWithin(t, providerTimeout, "virtio0 at 16 GiB", func(context.Context) (bool, string, error) {
				st, _ := n.Sim.VM(int(id))
				return st.Disks["virtio0"] == 16<<30, fmt.Sprintf("virtio0 is %d bytes", st.Disks["virtio0"]), nil
			})
			st, ok := n.Sim.VM(int(id))
			if !ok {
				t.Fatalf("%s: VM %d is Ready but not in Proxmox", tc.reason, id)
			}
			if st.Clones != 1 {
				t.Errorf("%s: VM %d was cloned %d times, want 1", tc.reason, id, st.Clones)
			}
			if ids := n.Sim.VMIDs(); len(ids) != 2 {
				t.Errorf("%s: Proxmox holds VMs %v, want the template and %d only", tc.reason, ids, id)
			}
			if got := st.Disks["virtio0"]; got != 16<<30 {
				t.Errorf("%s: virtio0 is %d bytes, want 16 GiB", tc.reason, got)
			}
		})
	}
}

// waitVMReady waits until the VirtualMachine name is Ready and Synced.
func waitVMReady(t testing.TB, cp *harness.ControlPlane, name string) {
	t.Helper()
	waitWithin(t, providerTimeout, "VirtualMachine "+name+" Ready and Synced", func(ctx context.Context) (bool, string, error) {
		got, err := get(ctx, cp, gvkVM, "", name)
		if err != nil {
			return false, err.Error(), nil
		}
		return harness.ConditionStatus(got, "Ready") == "True" && harness.ConditionStatus(got, "Synced") == "True", conditionsString(got), nil
	})
}
