package config

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"
	"github.com/hashicorp/terraform-plugin-sdk/v2/terraform"

	ujconfig "github.com/crossplane/upjet/v2/pkg/config"
)

// TestKeepCloneOffExistingVMs computes bpg's own diff of a VM whose
// Terraform state was rebuilt from its spec, as Upjet's Connect rebuilds it
// after a provider restart or for a VM adopted by a new cluster, and shows
// what the VirtualMachine's custom diff leaves of it.
func TestKeepCloneOffExistingVMs(t *testing.T) {
	pc, err := GetProvider()
	if err != nil {
		t.Fatal(err)
	}
	r := pc.Resources[VMResource]
	if r.TerraformCustomDiff == nil {
		t.Fatal("the VirtualMachine has no custom diff")
	}
	// A spec as a user writes it: clone.retries left to its default.
	params := map[string]any{
		"node_name": "pve1",
		"vm_id":     2015,
		"started":   false,
		"clone":     []any{map[string]any{"vm_id": 9002, "full": true, "datastore_id": "local-lvm"}},
		"disk":      []any{map[string]any{"interface": "virtio0", "datastore_id": "local-lvm", "size": 16}},
	}
	rebuilt := func(disk int) *terraform.InstanceState {
		// What Upjet's Connect does with a managed resource that has no
		// observation yet (copyParameters, then the shim).
		p := map[string]any{"id": "2015"}
		for k, v := range params {
			p[k] = v
		}
		p["disk"] = []any{map[string]any{"interface": "virtio0", "datastore_id": "local-lvm", "size": disk}}
		return stateOf(t, r, p)
	}
	cases := map[string]struct {
		reason string
		state  *terraform.InstanceState
		// wantForceNew are the keys for which bpg's diff wants a new VM;
		// wantClone whether the clone block is left in the diff.
		wantForceNew []string
		wantClone    bool
	}{
		"RebuiltState": {
			reason:       "a state rebuilt from the spec lacks clone.retries' default: bpg wants a new VM, the custom diff drops the clone block",
			state:        rebuilt(16),
			wantForceNew: []string{"clone.0.retries"},
		},
		"RebuiltMidResize": {
			reason:       "the disk not grown yet is still an update (disk.0.size stays); only the clone block is dropped",
			state:        rebuilt(8),
			wantForceNew: []string{"clone.0.retries"},
		},
		"NewVM": {
			reason:       "a VM not made yet keeps its whole clone block: it is what the create clones",
			wantForceNew: []string{"clone.0.datastore_id", "clone.0.full", "clone.0.retries", "clone.0.vm_id"},
			wantClone:    true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			// bpg's CustomizeDiff needs a configured client; the field
			// diff is the schema's own. (In the provider bpg's read fills
			// the other defaults from Proxmox before the diff.)
			diff, err := schema.InternalMap(r.TerraformResource.Schema).Diff(context.Background(), tc.state, terraform.NewResourceConfigRaw(params), nil, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			var forceNew, others []string
			for k, a := range diff.Attributes {
				if a.RequiresNew {
					forceNew = append(forceNew, k)
				}
				if !strings.HasPrefix(k, "clone.") {
					others = append(others, k)
				}
			}
			sort.Strings(forceNew)
			sort.Strings(others)
			if d := cmp.Diff(tc.wantForceNew, forceNew); d != "" {
				t.Errorf("%s: bpg's ForceNew keys -want, +got:\n%s", tc.reason, d)
			}
			got, err := r.TerraformCustomDiff(diff, tc.state, nil)
			if err != nil {
				t.Fatal(err)
			}
			var clone, rest []string
			for k := range got.Attributes {
				if strings.HasPrefix(k, "clone.") {
					clone = append(clone, k)
				} else {
					rest = append(rest, k)
				}
			}
			sort.Strings(rest)
			if (len(clone) > 0) != tc.wantClone {
				t.Errorf("%s: clone keys left in the diff: %v", tc.reason, clone)
			}
			if d := cmp.Diff(others, rest); d != "" {
				t.Errorf("%s: the custom diff changed keys outside the clone block -want, +got:\n%s", tc.reason, d)
			}
			if name == "RebuiltMidResize" && got.Attributes["disk.0.size"] == nil {
				t.Errorf("%s: the disk's resize left the diff", tc.reason)
			}
		})
	}
}

// TestSetUnconfiguredCloudInit computes bpg's own diff of a VM whose create
// stopped after the clone, before its cloud-init was configured (Proxmox
// refused the config update), and shows that the custom diff lets an update
// give it its snippet, while a VM that has one keeps asking for a new VM to
// change it.
func TestSetUnconfiguredCloudInit(t *testing.T) {
	pc, err := GetProvider()
	if err != nil {
		t.Fatal(err)
	}
	r := pc.Resources[VMResource]
	const key = "initialization.0.user_data_file_id"
	init := func(snippet string) []any {
		return []any{map[string]any{"datastore_id": "local-lvm", "interface": "ide2", "user_data_file_id": snippet}}
	}
	params := map[string]any{
		"node_name": "pve1", "vm_id": 2012, "started": true,
		"initialization": init("local:snippets/docker01-user-data.yaml"),
	}
	state := func(snippet string) *terraform.InstanceState {
		return stateOf(t, r, map[string]any{"id": "2012", "node_name": "pve1", "vm_id": 2012, "started": false, "initialization": init(snippet)})
	}
	cases := map[string]struct {
		reason     string
		state      *terraform.InstanceState
		wantNew    bool
		wantInDiff bool
	}{
		"CreateStoppedAfterClone": {
			reason: "a VM without cicustom gets its snippet by an update", state: state(""),
			wantInDiff: true,
		},
		"OtherSnippet": {
			reason: "a VM that has a snippet still needs a new VM to change it", state: state("local:snippets/other.yaml"),
			wantInDiff: true, wantNew: true,
		},
		"Converged": {
			reason: "a VM with its snippet has no difference", state: state("local:snippets/docker01-user-data.yaml"),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			diff, err := schema.InternalMap(r.TerraformResource.Schema).Diff(context.Background(), tc.state, terraform.NewResourceConfigRaw(params), nil, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			if a := diff.Attributes[key]; tc.wantInDiff && (a == nil || !a.RequiresNew) {
				t.Fatalf("%s: bpg's diff should want a new VM for %s, got %+v", tc.reason, key, a)
			}
			got, err := r.TerraformCustomDiff(diff, tc.state, nil)
			if err != nil {
				t.Fatal(err)
			}
			a := got.Attributes[key]
			if (a != nil) != tc.wantInDiff {
				t.Fatalf("%s: %s in the diff: %+v", tc.reason, key, a)
			}
			if a != nil && a.RequiresNew != tc.wantNew {
				t.Errorf("%s: %s RequiresNew = %v, want %v", tc.reason, key, a.RequiresNew, tc.wantNew)
			}
		})
	}
}

// stateOf is the Terraform state of r holding attributes p, as the shim
// builds it.
func stateOf(t *testing.T, r *ujconfig.Resource, p map[string]any) *terraform.InstanceState {
	t.Helper()
	v, err := schema.JSONMapToStateValue(p, r.TerraformResource.CoreConfigSchema())
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.TerraformResource.ShimInstanceStateFromValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKeepTheBootDisk computes bpg's own diff of an existing VM that boots
// from virtio0 against a spec naming another boot disk (a Composition whose
// image diskInterface is not the template's), and shows that the custom
// diff refuses it with what to fix, while a VM whose spec agrees with it, or
// a new VM, passes.
func TestKeepTheBootDisk(t *testing.T) {
	pc, err := GetProvider()
	if err != nil {
		t.Fatal(err)
	}
	r := pc.Resources[VMResource]
	spec := func(iface string) map[string]any {
		return map[string]any{
			"node_name": "pve1", "vm_id": 2003, "started": true,
			"boot_order": []any{iface},
			"disk":       []any{map[string]any{"interface": iface, "datastore_id": "local-lvm", "size": 32}},
		}
	}
	// What bpg's read makes of a VM cloned from a template that boots
	// virtio0: its boot order (the clone's), and its disk.
	booting := func(order []any) *terraform.InstanceState {
		p := spec("virtio0")
		p["id"] = "2003"
		p["boot_order"] = order
		p["disk"] = []any{map[string]any{"interface": "virtio0", "datastore_id": "local-lvm", "size": 8}}
		return stateOf(t, r, p)
	}
	cases := map[string]struct {
		reason  string
		state   *terraform.InstanceState
		params  map[string]any
		wantErr string // "" for none
	}{
		"OtherDisk": {
			reason: "a spec booting scsi0, which the VM does not have, is refused naming the fix",
			state:  booting([]any{"virtio0"}), params: spec("scsi0"),
			wantErr: "cannot boot VM 2003 from scsi0 instead of its boot disk virtio0: bpg would keep virtio0 only as an unused disk and boot a new, empty disk; " +
				"the image's diskInterface in the Composition's function input must be the template's boot disk (virtio0)",
		},
		"SameDisk": {
			reason: "a spec booting the VM's own disk passes (here growing it)",
			state:  booting([]any{"virtio0"}), params: spec("virtio0"),
		},
		"NoBootOrder": {
			reason: "a VM without a boot order in Proxmox is not judged",
			state:  booting(nil), params: spec("scsi0"),
		},
		"NewVM": {
			reason: "a VM that does not exist yet has nothing to keep",
			state:  nil, params: spec("scsi0"),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			diff, err := schema.InternalMap(r.TerraformResource.Schema).Diff(context.Background(), tc.state, terraform.NewResourceConfigRaw(tc.params), nil, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.TerraformCustomDiff(diff, tc.state, nil)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tc.wantErr, got); diff != "" {
				t.Errorf("%s: the custom diff's error (-want, +got):\n%s", tc.reason, diff)
			}
		})
	}
}
