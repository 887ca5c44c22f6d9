package config

import (
	"strconv"

	ujconfig "github.com/crossplane/upjet/v2/pkg/config"
)

// vmExternalName: a VM's external name is its Proxmox VM id, which is also
// bpg's Terraform ID for it. The function sets it before the VM exists, so
// a management cluster rebuilt from Git reads the VM with that id and adopts
// it instead of cloning a second one. A VM made without the annotation gets
// it from the id bpg reports once it is created.
var vmExternalName = ujconfig.ExternalName{
	// The id goes into vm_id when the spec leaves it out, so bpg clones to
	// exactly that id.
	SetIdentifierArgumentFn: func(base map[string]any, name string) {
		if _, ok := base["vm_id"]; ok {
			return
		}
		if id, err := strconv.Atoi(name); err == nil {
			base["vm_id"] = id
		}
	},
	GetExternalNameFn:      ujconfig.IDAsExternalName,
	GetIDFn:                ujconfig.ExternalNameAsID,
	DisableNameInitializer: true,
}

// A file's external name is its Proxmox volume id
// (<datastore>:<content>/<file name>), bpg's Terraform ID for it: the
// function sets it from the claim, so a rebuilt cluster finds the snippet it
// uploaded before.
var fileExternalName = ujconfig.IdentifierFromProvider

func externalNames() ujconfig.ResourceOption {
	return func(r *ujconfig.Resource) {
		switch r.Name {
		case VMResource:
			r.ExternalName = vmExternalName
		case FileResource:
			r.ExternalName = fileExternalName
		}
	}
}
