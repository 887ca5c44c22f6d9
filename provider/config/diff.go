package config

import (
	"fmt"
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

// cloudInitFiles are bpg's VM attributes naming the snippets Proxmox gives
// cloud-init (cicustom), each ForceNew in bpg's schema.
var cloudInitFiles = []string{
	"initialization.0.user_data_file_id", "initialization.0.vendor_data_file_id",
	"initialization.0.network_data_file_id", "initialization.0.meta_data_file_id",
}

// setUnconfiguredCloudInit lets an update give an existing VM the snippets
// it never got. bpg's create clones the template first and configures the
// clone after (proxmoxtf/resource/vm/vm.go at v0.111.1: vmCreateClone, then
// the config update carrying cicustom, updateBody.CloudInitConfig); when
// Proxmox refuses that update (a privilege the token lacks, an invalid boot
// order) the VM exists without cicustom and bpg's read reports
// user_data_file_id "" (vmReadCustom: CloudInitFiles.UserVolume nil). The
// field is ForceNew and Upjet refuses an update that would replace the
// resource, so the VM could never converge once the cause is fixed, short
// of deleting the claim. An empty old value replaces no snippet: vmUpdate's
// initialization branch writes the whole cloud-init config, cicustom
// included (vmGetCloudInitConfig), so the update sets it. A change from one
// snippet to another still asks for a new VM.
func setUnconfiguredCloudInit(diff *terraform.InstanceDiff, state *terraform.InstanceState, _ *terraform.ResourceConfig) (*terraform.InstanceDiff, error) {
	if diff == nil || state == nil || state.ID == "" {
		return diff, nil
	}
	for _, k := range cloudInitFiles {
		if a := diff.Attributes[k]; a != nil && a.RequiresNew && a.Old == "" && a.New != "" {
			a.RequiresNew = false
		}
	}
	return diff, nil
}

// bootOrder is bpg's VM attribute listing the devices the VM boots from.
const bootOrder = "boot_order"

// keepTheBootDisk refuses a difference that would boot an existing VM from
// another disk than the one it boots from. The function always composes the
// boot order and the disk as the image's diskInterface, the template's boot
// disk, so such a difference means the Composition names a disk the VM does
// not have (a wrong diskInterface, from the start or edited later). bpg's
// update (proxmoxtf/resource/vm/vm.go at v0.111.1, vmUpdate) would then
// delete every disk the plan lacks, the VM's own among them (Proxmox keeps
// it only as an unused disk), and add the plan's as a new, empty one
// (disk.Update: a blank disk), booting nothing. Refused, the VM is left as
// it is, and the message says what to fix; once the Composition is right
// the difference is gone and the update goes on. A VM whose boot order
// Proxmox does not report (none set) is not judged.
func keepTheBootDisk(diff *terraform.InstanceDiff, state *terraform.InstanceState, _ *terraform.ResourceConfig) (*terraform.InstanceDiff, error) {
	if diff == nil || state == nil || state.ID == "" {
		return diff, nil
	}
	old := state.Attributes[bootOrder+".0"]
	if old == "" {
		return diff, nil
	}
	newOrder := []string{}
	changed := false
	for k, a := range diff.Attributes {
		if k == bootOrder+".#" && a.NewRemoved {
			return diff, nil
		}
		if strings.HasPrefix(k, bootOrder+".") && k != bootOrder+".#" {
			changed = true
		}
	}
	if !changed {
		return diff, nil
	}
	for i := 0; ; i++ {
		k := fmt.Sprintf("%s.%d", bootOrder, i)
		v, ok := state.Attributes[k]
		if a := diff.Attributes[k]; a != nil {
			v, ok = a.New, !a.NewRemoved
		}
		if !ok {
			break
		}
		newOrder = append(newOrder, v)
	}
	for _, dev := range newOrder {
		if dev == old {
			return diff, nil
		}
	}
	return nil, fmt.Errorf("cannot boot VM %s from %s instead of its boot disk %s: bpg would keep %s only as an unused disk and boot a new, empty disk; "+
		"the image's diskInterface in the Composition's function input must be the template's boot disk (%s)",
		state.ID, strings.Join(newOrder, ";"), old, old, old)
}

// customDiffs are the resources' diff adjustments.
func customDiffs() ujconfig.ResourceOption {
	return func(r *ujconfig.Resource) {
		if r.Name == VMResource {
			r.TerraformCustomDiff = func(diff *terraform.InstanceDiff, state *terraform.InstanceState, config *terraform.ResourceConfig) (*terraform.InstanceDiff, error) {
				diff, err := keepCloneOffExistingVMs(diff, state, config)
				if err != nil {
					return nil, err
				}
				if diff, err = keepTheBootDisk(diff, state, config); err != nil {
					return nil, err
				}
				return setUnconfiguredCloudInit(diff, state, config)
			}
		}
	}
}
