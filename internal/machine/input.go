package machine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// Input identity: the function input's apiVersion and kind in the Composition.
const (
	InputAPIVersion = "machine.fn.homelab.dev/v1alpha1"
	InputKind       = "Input"
)

// Input is the function's input in crossplane/composition.yaml: the sizing
// classes and the site defaults, defined once for every claim.
type Input struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Classes maps a class name (small, medium, large) to its size.
	Classes map[string]Class `json:"classes"`
	// Images maps an image name (spec.image) to the template it clones.
	Images map[string]Image `json:"images"`
	// Defaults apply where a claim leaves a field out.
	Defaults Defaults `json:"defaults"`
}

// Class is a VM size.
type Class struct {
	Cores     int64 `json:"cores"`
	MemoryMiB int64 `json:"memoryMiB"`
	DiskGiB   int64 `json:"diskGiB"`
}

// Image is a template VM on Proxmox.
type Image struct {
	// TemplateVMID is the template VM's id.
	TemplateVMID int64 `json:"templateVmId"`
	// Node holds the template; empty means the VM's own node.
	Node string `json:"node,omitempty"`
	// DiskInterface is the template's boot disk (virtio0 for nixpkgs'
	// Proxmox image). A clone keeps it; the VM names it in its boot order
	// and sizes it to the class. Any other interface would be a second,
	// empty disk that Proxmox's default boot order may pick instead.
	DiskInterface string `json:"diskInterface"`
	// SCSIHardware is the template's SCSI controller model (scsihw;
	// virtio-scsi-single for nixpkgs' Proxmox image). A clone keeps it, and
	// the VM states it so that the provider's plan agrees with Proxmox: bpg
	// reads a clone's scsihw only when its state lacks one (as when a
	// rebuilt cluster adopts the VM), and a difference then is an update
	// that reboots the VM (bpg v0.111.1 proxmoxtf/resource/vm/vm.go: the
	// read's "Compare SCSI hardware type", the update's
	// HasChange(mkSCSIHardware) sets rebootRequired).
	SCSIHardware string `json:"scsiHardware"`
	// DiskGiB is the size of the template's disk: a class may grow it,
	// never shrink it.
	DiskGiB int64 `json:"diskGiB"`
}

// Defaults are the site's defaults.
type Defaults struct {
	Node    string `json:"node"`
	Storage string `json:"storage"`
	Bridge  string `json:"bridge"`
	// SnippetDatastore is the datastore with the snippets content type that
	// holds the user-data (decision D4), e.g. "local".
	SnippetDatastore string `json:"snippetDatastore"`
	// Domain is the DNS domain for FQDNs when a claim names none.
	Domain string `json:"domain,omitempty"`
	// FlakeRepo lets a claim leave nix.flakeRef out: FlakeRepo#hostname.
	FlakeRepo string `json:"flakeRepo,omitempty"`
	// CPUType is the emulated CPU type; empty leaves Proxmox's default.
	CPUType string `json:"cpuType,omitempty"`
	// ProviderConfigName is the provider's ProviderConfig; "default" when empty.
	ProviderConfigName string `json:"providerConfigName,omitempty"`
	// DNS are the nameservers of a machine whose claim names none. Without
	// either, Proxmox would hand the VM its own host's resolv.conf.
	DNS []string `json:"dns,omitempty"`
}

// ParseInput decodes a function input from JSON, rejecting unknown fields, and
// validates it. Errors name the field under "input.".
func ParseInput(data []byte) (*Input, error) {
	in := &Input{}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(in); err != nil {
		return nil, fmt.Errorf("cannot decode the function input: %w", err)
	}
	if errs := in.Validate(); len(errs) > 0 {
		return nil, errs
	}
	return in, nil
}

// Validate checks the input itself, so a bad Composition fails loudly instead
// of producing VMs with zero cores.
func (in *Input) Validate() Errors {
	var errs Errors
	if in.APIVersion != InputAPIVersion || in.Kind != InputKind {
		errs.add("input", in.APIVersion+"/"+in.Kind, fmt.Sprintf("must be apiVersion %s, kind %s", InputAPIVersion, InputKind))
	}
	if len(in.Classes) == 0 {
		errs.add("input.classes", "", "is empty; define at least one class (e.g. small: {cores: 1, memoryMiB: 2048, diskGiB: 16})")
	}
	for _, name := range sortedKeys(in.Classes) {
		c := in.Classes[name]
		p := "input.classes." + name
		if !labelRE().MatchString(name) {
			errs.add(p, name, "is not a valid class name; use lower-case letters, digits and '-'")
		}
		if c.Cores < 1 || c.Cores > 512 {
			errs.add(p+".cores", c.Cores, "must be between 1 and 512")
		}
		if c.MemoryMiB < 256 {
			errs.add(p+".memoryMiB", c.MemoryMiB, "must be at least 256")
		}
		if c.DiskGiB < 1 {
			errs.add(p+".diskGiB", c.DiskGiB, "must be at least 1")
		}
	}
	if len(in.Images) == 0 {
		errs.add("input.images", "", "is empty; map at least one image name to its template VM id")
	}
	for _, name := range sortedKeys(in.Images) {
		img := in.Images[name]
		p := "input.images." + name
		if !imageRE().MatchString(name) {
			errs.add(p, name, "is not a valid image name; use lower-case letters, digits, '.' and '-'")
		}
		if img.TemplateVMID < MinVMID || img.TemplateVMID > MaxVMID {
			errs.add(p+".templateVmId", img.TemplateVMID, fmt.Sprintf("must be between %d and %d", MinVMID, MaxVMID))
		}
		if img.Node != "" && !labelRE().MatchString(img.Node) {
			errs.add(p+".node", img.Node, "is not a valid node name")
		}
		if !diskInterfaceRE().MatchString(img.DiskInterface) {
			errs.add(p+".diskInterface", img.DiskInterface, "must be the template's boot disk, e.g. virtio0 (nixpkgs' Proxmox image), scsi0, sata0 or ide0")
		}
		if !slices.Contains(SCSIHardwareModels, img.SCSIHardware) {
			errs.add(p+".scsiHardware", img.SCSIHardware, "must be the template's SCSI controller (its scsihw; virtio-scsi-single for nixpkgs' Proxmox image), one of "+strings.Join(SCSIHardwareModels, ", "))
		}
		if img.DiskGiB < 1 {
			errs.add(p+".diskGiB", img.DiskGiB, "must be the size of the template's disk in GiB (at least 1)")
		}
	}
	d := in.Defaults
	for _, f := range []struct {
		path, value, fix string
		ok               bool
	}{
		{"input.defaults.node", d.Node, "name the Proxmox node VMs go to by default", labelRE().MatchString(d.Node)},
		{"input.defaults.storage", d.Storage, "name the storage VM disks go to by default", storageRE().MatchString(d.Storage)},
		{"input.defaults.bridge", d.Bridge, "name the bridge VMs attach to by default", bridgeRE().MatchString(d.Bridge)},
		{"input.defaults.snippetDatastore", d.SnippetDatastore, "name a datastore with the snippets content type", storageRE().MatchString(d.SnippetDatastore)},
	} {
		if !f.ok {
			errs.add(f.path, f.value, "is missing or invalid; "+f.fix)
		}
	}
	if d.Domain != "" && !domainRE().MatchString(d.Domain) {
		errs.add("input.defaults.domain", d.Domain, "is not a DNS domain")
	}
	if len(d.DNS) > MaxDNSServers {
		errs.add("input.defaults.dns", nil, fmt.Sprintf("lists %d servers; the resolver uses at most %d", len(d.DNS), MaxDNSServers))
	}
	for i, a := range d.DNS {
		if ip, err := netip.ParseAddr(a); err != nil || !ip.Is4() {
			errs.add(fmt.Sprintf("input.defaults.dns[%d]", i), a, "is not an IPv4 address")
		}
	}
	if d.FlakeRepo != "" {
		// A claim without a flake ref gets flakeRepo#HOSTNAME: the same
		// rules as a claim's (never echoed: it may carry a secret).
		for _, msg := range CheckFlakeRef(d.FlakeRepo + "#dns01") {
			errs.add("input.defaults.flakeRepo", nil, msg+" (flakeRepo is the ref without #HOST)")
		}
	}
	return errs
}

// ClassNames lists the classes, sorted, for error messages.
func (in *Input) ClassNames() string { return strings.Join(sortedKeys(in.Classes), ", ") }

// ImageNames lists the images, sorted, for error messages.
func (in *Input) ImageNames() string { return strings.Join(sortedKeys(in.Images), ", ") }

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
