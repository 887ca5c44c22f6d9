// Package config is the Upjet generator's configuration of our Proxmox
// provider: which of bpg's Terraform resources become Crossplane kinds, under
// which API group and kind names, and how each one's external name maps to
// its Terraform ID. cmd/generator feeds it to Upjet; cmd/provider runs the
// controllers Upjet generated from it, over the same bpg Go provider.
package config

import (
	"fmt"

	ujconfig "github.com/crossplane/upjet/v2/pkg/config"
	"github.com/crossplane/upjet/v2/pkg/registry"
)

const (
	// RootGroup is the API group our provider's kinds live under.
	RootGroup = "proxmox.homelab.dev"
	// ShortGroup puts both kinds in ve.proxmox.homelab.dev ("virtual
	// environment", bpg's name for Proxmox VE).
	ShortGroup = "ve"
	// Version of the generated kinds.
	Version    = "v1alpha1"
	modulePath = "github.com/homelab-infra/homelab-infra/provider"
)

// The bpg resources the Machine API composes, and the kinds they become.
// Nothing else is generated: every other kind would be a CRD and a
// controller to carry with no claim that makes one.
const (
	VMResource   = "proxmox_virtual_environment_vm"
	FileResource = "proxmox_virtual_environment_file"
)

var kinds = map[string]string{
	VMResource:   "VirtualMachine",
	FileResource: "File",
}

// descriptions of the kinds, for their CRDs (bpg's schema describes the
// fields, not the resources).
var descriptions = map[string]string{
	VMResource:   "A VirtualMachine is a Proxmox VE QEMU virtual machine, made, changed and deleted by bpg's proxmox_virtual_environment_vm. Its external name is its VM id.",
	FileResource: "A File is a file on a Proxmox VE datastore (a cloud-init snippet, an ISO), made by bpg's proxmox_virtual_environment_file. Its external name is its volume id.",
}

// GetProvider is the Upjet configuration of our provider, over bpg's SDKv2
// provider in no-fork mode: every reconcile calls bpg's Go code in-process.
func GetProvider() (*ujconfig.Provider, error) {
	tf := BPGProvider()
	schema, err := TerraformSchema(tf)
	if err != nil {
		return nil, err
	}
	include := make([]string, 0, len(kinds))
	for r := range kinds {
		include = append(include, "^"+r+"$")
	}
	// No scraped docs metadata: the CRDs' field descriptions come from
	// bpg's schema itself.
	pc := ujconfig.NewProvider(schema, "proxmox", modulePath, nil,
		ujconfig.WithRootGroup(RootGroup),
		ujconfig.WithShortName("proxmox"),
		// No terraform-CLI resources: only the SDKv2 (no-fork) list.
		ujconfig.WithIncludeList(nil),
		ujconfig.WithTerraformPluginSDKIncludeList(include),
		ujconfig.WithTerraformProvider(tf),
		ujconfig.WithFeaturesPackage("internal/features"),
		// The ProviderConfig kinds are ours, in apis/v1beta1, with their
		// controller in internal/controller/providerconfig.
		ujconfig.WithBasePackages(ujconfig.BasePackages{
			APIVersion:    []string{"v1beta1"},
			ControllerMap: map[string]string{"providerconfig": ujconfig.PackageNameConfig},
		}),
		ujconfig.WithDefaultResourceOptions(externalNames(), customDiffs()),
	)
	for name, kind := range kinds {
		pc.AddResourceConfigurator(name, func(r *ujconfig.Resource) {
			r.ShortGroup = ShortGroup
			r.Kind = kind
			r.Version = Version
			r.MetaResource = &registry.Resource{Name: name, Description: descriptions[name]}
		})
	}
	pc.ConfigureResources()
	for name := range kinds {
		if pc.Resources[name] == nil {
			return nil, fmt.Errorf("bpg's provider has no resource %s", name)
		}
	}
	return pc, nil
}
