// Package compose turns a resolved Machine into the provider-proxmox-bpg
// managed resources that make it (decisions D3, D4): an EnvironmentFile
// holding the cloud-init user-data snippet, and an EnvironmentVM cloned from
// the NixOS template that boots with it. Pure functions, no I/O: the same
// output for the same input, so the function, labctl render and the tests
// all agree.
package compose

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// Composed resource names: the keys Crossplane tracks each resource by.
// Renaming one would make Crossplane delete the old resource and create a new
// one, so they never change.
const (
	UserData = "user-data"
	VM       = "vm"
)

// The provider's kinds (both cluster-scoped).
const (
	FileAPIVersion = "virtualenvironmentfile.proxmoxbpg.crossplane.io/v1alpha1"
	FileKind       = "EnvironmentFile"
	VMAPIVersion   = "virtualenvironmentvm.proxmoxbpg.crossplane.io/v1alpha1"
	VMKind         = "EnvironmentVM"
)

// Labels set on every composed resource, for selecting a machine's parts.
const (
	LabelHostname = "homelab.dev/hostname"
	LabelRole     = "homelab.dev/role"
)

// Resource is one composed resource under its stable name.
type Resource struct {
	Name   string
	Object *unstructured.Unstructured
}

// Resources composes the machine m of the XR named xrName, booting with the
// given user-data. owner is how people know the machine: its claim as
// namespace/name, or the XR's name when it has no claim. The order is fixed:
// user-data, then vm.
func Resources(xrName, owner string, m *machine.Resolved, userData []byte) []Resource {
	return []Resource{
		{Name: UserData, Object: File(xrName, m, userData)},
		{Name: VM, Object: VirtualMachine(xrName, owner, m)},
	}
}

// SnippetFileName is the user-data file's name in the snippet datastore. It
// carries the host name, which labctl validate keeps unique, so two machines
// never overwrite each other's snippet.
func SnippetFileName(m *machine.Resolved) string { return m.Hostname + "-user-data.yaml" }

// SnippetID is how Proxmox names the snippet: <datastore>:snippets/<file>.
// The VM refers to it by this id, which is known before the file exists, so
// the VM needs no value observed from the file.
func SnippetID(m *machine.Resolved) string {
	return m.SnippetDatastore + ":snippets/" + SnippetFileName(m)
}

// File is the EnvironmentFile: the user-data as a snippet (decision D4).
func File(xrName string, m *machine.Resolved, userData []byte) *unstructured.Unstructured {
	return object(FileAPIVersion, FileKind, xrName+"-"+UserData, m, map[string]any{
		"contentType": "snippets",
		"datastoreId": m.SnippetDatastore,
		"nodeName":    m.Proxmox.Node,
		// Re-upload when the user-data changes (a new key, say).
		"overwrite": true,
		"sourceRaw": []any{map[string]any{
			"data":     string(userData),
			"fileName": SnippetFileName(m),
		}},
	})
}

// VirtualMachine is the EnvironmentVM: a full clone of the image's template,
// sized by the class, on the bridge and VLAN, with Proxmox's cloud-init drive
// carrying the network (decision D8) and our user-data snippet. Its Proxmox
// description names owner, so whoever finds the VM in the Proxmox UI knows
// which claim to edit instead.
func VirtualMachine(xrName, owner string, m *machine.Resolved) *unstructured.Unstructured {
	clone := map[string]any{
		"vmId":        m.Image.TemplateVMID,
		"full":        true,
		"datastoreId": m.Proxmox.Storage,
	}
	if m.Image.Node != "" && m.Image.Node != m.Proxmox.Node {
		clone["nodeName"] = m.Image.Node
	}
	cpu := map[string]any{"cores": m.Class.Cores}
	if m.CPUType != "" {
		cpu["type"] = m.CPUType
	}
	nic := map[string]any{"bridge": m.Proxmox.Bridge, "model": "virtio"}
	if m.Proxmox.VLAN != nil {
		nic["vlanId"] = *m.Proxmox.VLAN
	}
	ipv4 := map[string]any{"address": "dhcp"}
	if !m.Network.DHCP {
		ipv4 = map[string]any{"address": m.IPv4CIDR, "gateway": m.Network.Gateway}
	}
	init := map[string]any{
		"datastoreId":    m.Proxmox.Storage,
		"ipConfig":       []any{map[string]any{"ipv4": []any{ipv4}}},
		"userDataFileId": SnippetID(m),
	}
	if dns := dnsBlock(m); dns != nil {
		init["dns"] = []any{dns}
	}
	fp := map[string]any{
		"name":        m.Hostname,
		"nodeName":    m.Proxmox.Node,
		"description": fmt.Sprintf("%s: Machine %s, managed by Crossplane (homelab-infra); edits here are overwritten", m.FQDN, owner),
		"clone":       []any{clone},
		"cpu":         []any{cpu},
		"memory":      []any{map[string]any{"dedicated": m.Class.MemoryMiB}},
		"disk": []any{map[string]any{
			// The template's boot disk; cloning keeps it, this sets its size.
			"interface":   "scsi0",
			"datastoreId": m.Proxmox.Storage,
			"size":        m.Class.DiskGiB,
			"discard":     "on",
		}},
		"networkDevice":   []any{nic},
		"initialization":  []any{init},
		"agent":           []any{map[string]any{"enabled": true}},
		"operatingSystem": []any{map[string]any{"type": "l26"}},
		"started":         true,
		"onBoot":          true,
	}
	if len(m.Tags) > 0 {
		tags := make([]any, len(m.Tags))
		for i, t := range m.Tags {
			tags[i] = t
		}
		fp["tags"] = tags
	}
	if m.Proxmox.VMID != nil {
		fp["vmId"] = *m.Proxmox.VMID
	}
	return object(VMAPIVersion, VMKind, xrName+"-"+VM, m, fp)
}

func dnsBlock(m *machine.Resolved) map[string]any {
	if m.Domain == "" && len(m.Network.DNS) == 0 {
		return nil
	}
	d := map[string]any{}
	if m.Domain != "" {
		d["domain"] = m.Domain
	}
	if len(m.Network.DNS) > 0 {
		s := make([]any, len(m.Network.DNS))
		for i, v := range m.Network.DNS {
			s[i] = v
		}
		d["servers"] = s
	}
	return d
}

func object(apiVersion, kind, name string, m *machine.Resolved, forProvider map[string]any) *unstructured.Unstructured {
	labels := map[string]any{LabelHostname: m.Hostname}
	if m.Role != "" {
		labels[LabelRole] = m.Role
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion,
		"kind":       kind,
		"metadata":   map[string]any{"name": name, "labels": labels},
		"spec": map[string]any{
			"providerConfigRef": map[string]any{"name": m.ProviderConfig},
			"forProvider":       forProvider,
		},
	}}
}
