package config

import (
	"strings"

	"github.com/hashicorp/terraform-plugin-sdk/v2/terraform"

	ujconfig "github.com/crossplane/upjet/v2/pkg/config"
)

// cloneBlock is bpg's VM attribute that says which template a new VM is
// cloned from.
const cloneBlock = "clone"

// keepCloneOffExistingVMs drops every difference in the clone block once the
// VM exists. The block is an instruction for the create only: bpg reads it
// in vmCreate and nowhere writes it from Proxmox (proxmoxtf/resource/vm/vm.go
// at v0.111.1: vmRead never sets mkClone), because Proxmox keeps no record of
// the template a VM came from. Its fields are ForceNew, and Upjet refuses an
// update that would replace the resource, so a difference there could never
// converge. One appears whenever the provider rebuilds its Terraform state
// from the managed resource instead of from a create it saw end (a restart
// mid-create, a cluster rebuilt from Git adopting its VMs): Upjet's Connect
// copies the spec without the schema's defaults, so clone.0.retries reads 0
// where the schema's default is 1. A different template or clone target in
// the spec of an existing VM is likewise left alone: only a new VM is cloned.
func keepCloneOffExistingVMs(diff *terraform.InstanceDiff, state *terraform.InstanceState, _ *terraform.ResourceConfig) (*terraform.InstanceDiff, error) {
	if diff == nil || state == nil || state.ID == "" {
		return diff, nil
	}
	for k := range diff.Attributes {
		if k == cloneBlock+".#" || strings.HasPrefix(k, cloneBlock+".") {
			delete(diff.Attributes, k)
		}
	}
	return diff, nil
}

// customDiffs are the resources' diff adjustments.
func customDiffs() ujconfig.ResourceOption {
	return func(r *ujconfig.Resource) {
		if r.Name == VMResource {
			r.TerraformCustomDiff = keepCloneOffExistingVMs
		}
	}
}
