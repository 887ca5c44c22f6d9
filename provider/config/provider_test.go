package config

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	tfjson "github.com/hashicorp/terraform-json"
)

func TestGetProvider(t *testing.T) {
	pc, err := GetProvider()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for name, r := range pc.Resources {
		got[name] = r.ShortGroup + "." + RootGroup + "/" + r.Version + " " + r.Kind
	}
	want := map[string]string{
		VMResource:   "ve.proxmox.homelab.dev/v1alpha1 VirtualMachine",
		FileResource: "ve.proxmox.homelab.dev/v1alpha1 File",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the generated kinds: -want, +got:\n%s", diff)
	}
	for name, r := range pc.Resources {
		if !r.ShouldUseTerraformPluginSDKClient() {
			t.Errorf("%s: not reconciled through bpg's Go provider (no-fork)", name)
		}
	}
}

func TestVMExternalName(t *testing.T) {
	pc, err := GetProvider()
	if err != nil {
		t.Fatal(err)
	}
	en := pc.Resources[VMResource].ExternalName
	if !en.DisableNameInitializer {
		t.Error("a VM without an external name would get its object name, not a VM id")
	}
	cases := map[string]struct {
		reason string
		params map[string]any
		want   any
	}{
		"FromName": {reason: "the external name is the VM id bpg clones to", params: map[string]any{}, want: 1053},
		"SpecWins": {reason: "an id in the spec is kept", params: map[string]any{"vm_id": 7}, want: 7},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			en.SetIdentifierArgumentFn(tc.params, "1053")
			if diff := cmp.Diff(tc.want, tc.params["vm_id"]); diff != "" {
				t.Errorf("%s: vm_id -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
	id, err := en.GetIDFn(context.Background(), "1053", nil, nil)
	if err != nil || id != "1053" {
		t.Errorf("the Terraform ID of external name 1053: want 1053, got %q (%v)", id, err)
	}
}

// TestTerraformSchema checks the schema taken from bpg's Go provider against
// what its Go schema says, for a few attributes Upjet's types rest on.
func TestTerraformSchema(t *testing.T) {
	raw, err := TerraformSchema(BPGProvider())
	if err != nil {
		t.Fatal(err)
	}
	ps := &tfjson.ProviderSchemas{}
	if err := json.Unmarshal(raw, ps); err != nil {
		t.Fatal(err)
	}
	vm := ps.Schemas[providerSource].ResourceSchemas[VMResource].Block
	cases := map[string]struct {
		reason string
		got    any
		want   any
	}{
		"NodeRequired":  {reason: "node_name is a required string", got: []any{vm.Attributes["node_name"].Required, vm.Attributes["node_name"].AttributeType.FriendlyName()}, want: []any{true, "string"}},
		"VMIDComputed":  {reason: "vm_id is an optional, computed number", got: []any{vm.Attributes["vm_id"].Optional, vm.Attributes["vm_id"].Computed, vm.Attributes["vm_id"].AttributeType.FriendlyName()}, want: []any{true, true, "number"}},
		"CloneIsAList":  {reason: "clone is a list block of at most one", got: []any{string(vm.NestedBlocks["clone"].NestingMode), vm.NestedBlocks["clone"].MaxItems}, want: []any{"list", uint64(1)}},
		"TagsListOfStr": {reason: "tags is a list of strings", got: vm.Attributes["tags"].AttributeType.FriendlyName(), want: "list of string"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.got); diff != "" {
				t.Errorf("%s: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
