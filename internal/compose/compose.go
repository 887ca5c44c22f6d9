// Package compose turns a resolved Machine into the managed resources of our
// Proxmox provider (provider/) that make it (decisions D3, D4): a File
// holding the cloud-init user-data snippet, and a VirtualMachine cloned from
// the NixOS template that boots with it. Pure functions, no I/O: the same
// output for the same input, so the function, labctl render and the tests
// all agree.
package compose

import (
	"strconv"

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

// The provider's kinds (both cluster-scoped; provider/config names them).
const (
	FileAPIVersion = "ve.proxmox.homelab.dev/v1alpha1"
	FileKind       = "File"
	VMAPIVersion   = "ve.proxmox.homelab.dev/v1alpha1"
	VMKind         = "VirtualMachine"
)

// Labels set on every composed resource, for selecting a machine's parts.
const (
	LabelHostname = "homelab.dev/hostname"
	LabelRole     = "homelab.dev/role"
)

// AnnotationExternalName is the managed resource's name in Proxmox. Both
// resources set it from the claim (the VM id, the snippet's volume id), so a
// management cluster rebuilt from Git adopts the VM and snippet that exist
// instead of cloning a second VM or failing on "already exists".
const AnnotationExternalName = "crossplane.io/external-name"

// ManagementPolicies of both resources: every action but LateInitialize.
// Late-initialization would copy what Proxmox reports (MAC addresses, the
// template's defaults) into spec.forProvider, where the function's next
// apply takes it out again: a change on every reconcile.
var ManagementPolicies = []any{"Observe", "Create", "Update", "Delete"}

// ObservePolicies are a VM's until it is known to be absent or this
// claim's (function/ownership.go): the provider only reads it.
var ObservePolicies = []any{"Observe"}

// Pool is the Proxmox pool every VM is created in. deploy/proxmox/token.sh
// creates it and grants the API token its VM privileges on the pool only,
// so a VM outside it (hand-made, another tool's) is out of the token's
// reach whatever a claim says.
const Pool = "homelab"

// Mark is what a VM's description says when it is the claim owner's
// machine: a claim adopts an existing VM only when it carries its mark.
func Mark(owner string) string {
	return "Machine " + owner + ", managed by Crossplane (homelab-infra)"
}

// Settings of every VM that are the same for all machines; each is a fault
// found with the real provider (README, "Proxmox").
const (
	// AgentTimeout bounds bpg's wait for the guest agent's addresses on
	// every read. Its default, 15m, outlasts the provider's 3-minute
	// reconcile timeout, so a VM whose agent never answers (no OS booted, a
	// DHCP NIC on a VLAN without DHCP) could never be read, nor fixed.
	AgentTimeout = "60s"
	// CloneRetries lets bpg retry a clone Proxmox refused for a passing
	// reason ("got no worker upid" when many clones start at once) instead
	// of failing the create.
	CloneRetries = 3
	// RebootTimeout bounds a reboot after an update (bpg's default 1800 s):
	// a guest that never booted ignores the ACPI request.
	RebootTimeout = 300
)

// Resource is one composed resource under its stable name.
type Resource struct {
	Name   string
	Object *unstructured.Unstructured
}

// Resources composes the machine m of the XR named xrName, booting with the
// given user-data and a boot disk of diskGiB. owner is how people know the
// machine: its claim as namespace/name, or the XR's name when it has no
// claim. The order is fixed: user-data, then vm.
//
// The function builds the same objects directly as protobuf Structs
// (internal/function/composed.go): a change here is made there too, and
// TestComposeStructs fails until it is.
func Resources(xrName, owner string, m *machine.Resolved, userData []byte, diskGiB int64) []Resource {
	return []Resource{
		{Name: UserData, Object: File(xrName, m, userData)},
		{Name: VM, Object: VirtualMachine(xrName, owner, m, diskGiB)},
	}
}

// SnippetFileName is the user-data file's name in the snippet datastore. It
// carries the VM id, which is unique in the Proxmox cluster (and checked
// unique among the claims), so two machines can never share, or overwrite,
// a snippet; the host name is there for whoever reads the folder.
func SnippetFileName(m *machine.Resolved) string {
	return m.Hostname + "-" + strconv.FormatInt(*m.Proxmox.VMID, 10) + "-user-data.yaml"
}

// SnippetID is how Proxmox names the snippet: <datastore>:snippets/<file>.
// The VM refers to it by this id, which is known before the file exists, so
// the VM needs no value observed from the file.
func SnippetID(m *machine.Resolved) string {
	return m.SnippetDatastore + ":snippets/" + SnippetFileName(m)
}

// File is the user-data as a snippet (decision D4).
func File(xrName string, m *machine.Resolved, userData []byte) *unstructured.Unstructured {
	return object(FileAPIVersion, FileKind, xrName+"-"+UserData, SnippetID(m), m, map[string]any{
		"contentType": "snippets",
		"datastoreId": m.SnippetDatastore,
		"nodeName":    m.Proxmox.Node,
		// Never replace a file that is not this resource's: the name is the
		// machine's own, so an existing file is someone else's mistake.
		"overwrite": false,
		"sourceRaw": []any{map[string]any{
			"data":     string(userData),
			"fileName": SnippetFileName(m),
		}},
	})
}

// VirtualMachine is a full clone of the image's template,
// its boot disk grown to diskGiB, on the bridge and VLAN, with Proxmox's
// cloud-init drive carrying the network (decision D8) and our user-data
// snippet. Its Proxmox description names owner, so whoever finds the VM in
// the Proxmox UI knows which claim to edit instead.
func VirtualMachine(xrName, owner string, m *machine.Resolved, diskGiB int64) *unstructured.Unstructured {
	clone := map[string]any{
		"vmId":        m.Image.TemplateVMID,
		"full":        true,
		"datastoreId": m.Proxmox.Storage,
		"retries":     int64(CloneRetries),
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
		"description": m.FQDN + ": " + Mark(owner) + "; edits here are overwritten",
		"poolId":      Pool,
		"clone":       []any{clone},
		"cpu":         []any{cpu},
		"memory":      []any{map[string]any{"dedicated": m.Class.MemoryMiB}},
		"disk": []any{map[string]any{
			// The template's boot disk: the clone has it, so this grows it.
			// Another interface would be a new, empty disk.
			"interface":   m.Image.DiskInterface,
			"datastoreId": m.Proxmox.Storage,
			"size":        diskGiB,
			"discard":     "on",
		}},
		// Without a boot order Proxmox boots the first disk by bus (ide,
		// scsi, virtio, sata), which need not be the template's.
		"bootOrder": []any{m.Image.DiskInterface},
		// The template's controller, which the clone has: left out, the
		// provider plans bpg's default (virtio-scsi-pci), a change it makes
		// with a reboot once its state holds what Proxmox has, as after a
		// rebuilt cluster adopts the VM (TestAdoptionAfterRebuild).
		"scsiHardware":    m.Image.SCSIHardware,
		"networkDevice":   []any{nic},
		"initialization":  []any{init},
		"agent":           []any{map[string]any{"enabled": true, "timeout": AgentTimeout}},
		"operatingSystem": []any{map[string]any{"type": "l26"}},
		"started":         true,
		"onBoot":          true,
		// Deleting a machine destroys it: stop it at once instead of asking
		// the guest to shut down and waiting up to 30 minutes for a guest
		// that never booted.
		"stopOnDestroy": true,
		"timeoutReboot": int64(RebootTimeout),
	}
	if len(m.Tags) > 0 {
		tags := make([]any, len(m.Tags))
		for i, t := range m.Tags {
			tags[i] = t
		}
		fp["tags"] = tags
	}
	fp["vmId"] = *m.Proxmox.VMID
	return object(VMAPIVersion, VMKind, xrName+"-"+VM, strconv.FormatInt(*m.Proxmox.VMID, 10), m, fp)
}

// dnsBlock is the cloud-init DNS: the machine's nameservers (the claim's or
// the site's; machine.Validate requires one of them, since Proxmox would
// otherwise write its own host's resolv.conf) and its search domain.
func dnsBlock(m *machine.Resolved) map[string]any {
	if m.Domain == "" && len(m.DNS) == 0 {
		return nil
	}
	d := map[string]any{}
	if m.Domain != "" {
		d["domain"] = m.Domain
	}
	if len(m.DNS) > 0 {
		s := make([]any, len(m.DNS))
		for i, v := range m.DNS {
			s[i] = v
		}
		d["servers"] = s
	}
	return d
}

func object(apiVersion, kind, name, externalName string, m *machine.Resolved, forProvider map[string]any) *unstructured.Unstructured {
	labels := map[string]any{LabelHostname: m.Hostname}
	if m.Role != "" {
		labels[LabelRole] = m.Role
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion,
		"kind":       kind,
		"metadata": map[string]any{
			"name":        name,
			"labels":      labels,
			"annotations": map[string]any{AnnotationExternalName: externalName},
		},
		"spec": map[string]any{
			"managementPolicies": ManagementPolicies,
			"providerConfigRef":  map[string]any{"name": m.ProviderConfig},
			"forProvider":        forProvider,
		},
	}}
}
