package config

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"
	"github.com/hashicorp/terraform-plugin-sdk/v2/terraform"
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
	block := r.TerraformResource.CoreConfigSchema()
	rebuilt := func(disk int) *terraform.InstanceState {
		// What Upjet's Connect does with a managed resource that has no
		// observation yet (copyParameters, then the shim).
		p := map[string]any{"id": "2015"}
		for k, v := range params {
			p[k] = v
		}
		p["disk"] = []any{map[string]any{"interface": "virtio0", "datastore_id": "local-lvm", "size": disk}}
		v, err := schema.JSONMapToStateValue(p, block)
		if err != nil {
			t.Fatal(err)
		}
		s, err := r.TerraformResource.ShimInstanceStateFromValue(v)
		if err != nil {
			t.Fatal(err)
		}
		return s
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
