//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/homelab-infra/homelab-infra/internal/function"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/test/harness"
	"github.com/homelab-infra/homelab-infra/test/proxmoxsim"
)

// TestFailureAfterClone: Proxmox refuses a step after the clone (each case
// one of the README's failures): the VM exists, and the claim's VM
// condition names Proxmox's refusal and the fix. Once the fix the README
// gives is made where it says, the provider goes on with the same VM,
// without a second clone and without the claim being deleted, and the
// guest boots.
func TestFailureAfterClone(t *testing.T) {
	t.Parallel()
	const gib = int64(1) << 30
	type env struct {
		n     *node
		cp    *harness.ControlPlane
		claim *unstructured.Unstructured
	}
	cases := map[string]struct {
		reason string
		tune   func(*proxmoxsim.Options)
		// cause runs before the claim is applied: what makes Proxmox refuse.
		cause func(t *testing.T, e env)
		// want are in the claim's VM condition message (%d: the VM id).
		want []string
		// fix is what the README says to do; check looks at the booted VM.
		fix   func(t *testing.T, e env)
		check func(t *testing.T, st proxmoxsim.VMState)
	}{
		"Forbidden": {
			reason: "the token's role lacks VM.Config.CDROM (as the README's former role did): bpg's removal of the template's cloud-init drive is refused",
			cause: func(t *testing.T, e env) {
				// PVE 9's HomelabVM (deploy/proxmox/token.sh) without VM.Config.CDROM.
				pveum(t, e.n, "role", "modify", "HomelabVM", "--privs", "VM.Allocate VM.Audit VM.PowerMgmt "+
					"VM.Config.CPU VM.Config.Memory VM.Config.Disk VM.Config.Cloudinit VM.Config.Network VM.Config.Options VM.Config.HWType "+
					"VM.GuestAgent.Audit Pool.Audit")
			},
			want: []string{"Permission check failed (/vms/%d, VM.Config.CDROM)", "grant it as deploy/proxmox/token.sh does"},
			fix: func(t *testing.T, e env) {
				pveum(t, e.n, "role", "modify", "HomelabVM", "--privs", "VM.Config.CDROM", "--append", "1")
			},
		},
		"BootOrder": {
			reason: "the Composition's image names scsi0 as the boot disk, while the template's is virtio0: the boot order names a disk the clone does not have",
			cause: func(t *testing.T, e env) {
				applyComposition(t, e.cp, func(input map[string]any) {
					_ = unstructured.SetNestedField(input, "scsi0", "images", "nixos-26.05", "diskInterface")
				})
			},
			// The provider then refuses to boot the VM from another disk
			// (bpg's update would detach virtio0 and boot an empty scsi0).
			want: []string{"invalid bootorder: device 'scsi0' does not exist", "the image's diskInterface in the Composition's function input",
				"from scsi0 instead of its boot disk virtio0"},
			fix: func(t *testing.T, e env) {
				applyComposition(t, e.cp, func(map[string]any) {})
			},
			check: func(t *testing.T, st proxmoxsim.VMState) {
				for opt := range st.Config {
					if opt == "scsi0" || strings.HasPrefix(opt, "unused") {
						t.Errorf("want the template's disk alone, found %s: %s", opt, st.Config[opt])
					}
				}
			},
		},
		"Memory": {
			reason: "the node cannot map the medium class's 4 GiB for QEMU: the start fails",
			tune: func(o *proxmoxsim.Options) {
				for i := range o.Nodes {
					o.Nodes[i].MemoryMiB = 3072
				}
			},
			want: []string{"cannot set up guest memory 'pc.ram': Cannot allocate memory", "pick a smaller spec.class"},
			fix: func(t *testing.T, e env) {
				setSpec(t, e.claim, "small", "class")
				if err := e.cp.Apply(ctxFor(t), e.claim); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, st proxmoxsim.VMState) {
				if st.Boot.MemoryMiB != 2048 {
					t.Errorf("want the guest on class small's 2048 MiB, got %d", st.Boot.MemoryMiB)
				}
			},
		},
		"Resize": {
			reason: "the claim's datastore is a thick LVM volume group with room for the template's 8 GiB copy, not for the class's 32 GiB",
			tune: func(o *proxmoxsim.Options) {
				o.Storages = []proxmoxsim.Storage{
					{ID: "local", Type: "dir", Content: []string{"backup", "iso", "snippets", "vztmpl"}},
					{ID: "local-lvm", Type: "lvmthin", Content: []string{"images", "rootdir"}},
					{ID: "vmdata", Type: "lvm", VG: "vmdata", Content: []string{"images", "rootdir"}, Size: 12 * gib},
				}
			},
			cause: func(t *testing.T, e env) {
				// What deploy/proxmox/token.sh grants on VM_STORAGE.
				pveum(t, e.n, "acl", "modify", "/storage/vmdata", "--users", "crossplane@pve", "--roles", "HomelabDisks")
				setSpec(t, e.claim, "vmdata", "proxmox", "storage")
			},
			want: []string{"Insufficient free space", "vgextend its volume group"},
			fix: func(t *testing.T, e env) {
				for _, node := range clusterNodes {
					if err := e.n.Sim.SetStorageSize(node, "vmdata", 64*gib); err != nil {
						t.Fatal(err)
					}
				}
			},
			check: func(t *testing.T, st proxmoxsim.VMState) {
				if got := st.Disks["virtio0"]; got != 32*gib {
					t.Errorf("want virtio0 grown to class medium's 32 GiB, got %d bytes", got)
				}
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			n := ownNode(t, tc.tune)
			cp := startOwnStack(t, n, filepath.Join(t.TempDir(), "stack"))
			if err := cp.Apply(ctxFor(t), namespaceObject("failure")); err != nil {
				t.Fatal(err)
			}
			claim, id := machineClaim(t, "docker01", "failure")
			e := env{n: n, cp: cp, claim: claim}
			if tc.cause != nil {
				tc.cause(t, e)
			}
			if err := cp.Apply(ctxFor(t), claim); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if w == "Permission check failed (/vms/%d, VM.Config.CDROM)" {
					w = fmt.Sprintf(w, id)
				}
				waitFor(t, fmt.Sprintf("the claim's VM condition to say %q (%s)", w, tc.reason), claimCondition(cp, "failure", claim.GetName(),
					function.ConditionVM, "False", w))
			}
			if _, found := n.Sim.VM(int(id)); !found {
				t.Fatalf("VM %d should exist: the refusal comes after the clone", id)
			}

			tc.fix(t, e)
			waitClaimReady(t, cp, "failure", claim.GetName())
			st := waitSim(t, n, id, "boot", func(st proxmoxsim.VMState) (bool, string) { return st.Boot.Booted, st.Status })
			if st.Clones != 1 {
				t.Errorf("VM %d was cloned %d times; the provider should go on with the first", id, st.Clones)
			}
			if st.Boot.Device != "virtio0" {
				t.Errorf("want the guest booted from the template's virtio0, got %q (%s)", st.Boot.Device, st.Boot.Problem)
			}
			if tc.check != nil {
				tc.check(t, st)
			}
		})
	}
}

// applyComposition applies the repo's Composition with edit made to its
// function's input, as a user who edits crossplane/composition.yaml does.
func applyComposition(t *testing.T, cp *harness.ControlPlane, edit func(input map[string]any)) {
	t.Helper()
	objs, err := harness.ReadObjects(filepath.Join(testenv.RepoRoot(t), "crossplane", "composition.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		steps, _, _ := unstructured.NestedSlice(o.Object, "spec", "pipeline")
		for _, st := range steps {
			if input, ok := st.(map[string]any)["input"].(map[string]any); ok {
				edit(input)
			}
		}
		_ = unstructured.SetNestedSlice(o.Object, steps, "spec", "pipeline")
		if err := cp.Apply(ctxFor(t), o); err != nil {
			t.Fatal(err)
		}
	}
}

// pveum runs a pveum command on n's cluster, as an administrator does.
func pveum(t *testing.T, n *node, args ...string) {
	t.Helper()
	if err := n.Sim.Pveum(args...); err != nil {
		t.Fatal(err)
	}
}
