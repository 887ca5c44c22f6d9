package function

import (
	"strconv"

	"google.golang.org/protobuf/types/known/structpb"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// composed is the machine's snippet and VM as the response desires them,
// what was kept of the existing ones, and what the status and warnings read
// back from them.
type composed struct {
	// file and vm are the composed resources; fileErr and vmErr why one
	// could not be encoded (reported when it is desired, as before).
	file, vm       *structpb.Struct
	fileErr, vmErr error
	// fileKept, vmKept and defaultsKept are the spec.forProvider fields
	// kept from the existing snippet and VM (create-only fields, then the
	// defaults); movedTo is the node the VM was migrated to ("" if none).
	fileKept, vmKept, defaultsKept []string
	movedTo                        string
	// read back: the snippet's data (hasData: it has a sourceRaw), its node
	// and datastore, the VM's node.
	data                            string
	hasData                         bool
	fileNode, fileDatastore, vmNode string
}

// machineArgs is what the snippet and VM are composed from.
type machineArgs struct {
	xrName, owner string
	m             *machine.Resolved
	userData      string
	diskGiB       int64
	spec          *machine.Spec
	obs           observed
	// pols are the VM's management policies (vmOwnership).
	pols []any
}

// composeMachine composes the snippet and the VM, keeping what the existing
// ones must keep. It builds their Structs directly (composeStructs): making
// them as unstructured maps (compose.Resources) and then converting those was
// some 40% of the function's CPU per call (issue 21). The maps stay the
// reference (TestComposeStructs compares the two), and the way for what the
// direct build cannot make as they would: a string that is not valid UTF-8,
// which structpb refuses but which keeping an existing value could replace.
func composeMachine(b *structBuilder, a machineArgs) composed {
	if c, ok := composeStructs(b, a); ok {
		return c
	}
	return composeMaps(b, a)
}

// composeMaps composes the machine as unstructured maps (compose.Resources),
// keeps what exists in them, and encodes them.
func composeMaps(b *structBuilder, a machineArgs) composed {
	resources := compose.Resources(a.xrName, a.owner, a.m, []byte(a.userData), a.diskGiB)
	file, vm := resources[0].Object, resources[1].Object
	var c composed
	c.fileKept = compose.KeepCreateOnly(file, a.obs.file)
	c.vmKept = compose.KeepCreateOnly(vm, a.obs.vm)
	c.defaultsKept = compose.KeepDefaults(vm, a.obs.vm, a.spec)
	c.movedTo = followNode(vm, a.obs.vm)
	_ = unstructured.SetNestedSlice(vm.Object, a.pols, "spec", "managementPolicies")

	c.readBack(file, vm)
	c.file, c.fileErr = b.newStruct(file.Object)
	c.vm, c.vmErr = b.newStruct(vm.Object)
	return c
}

// readBack reads into c what the status and the migration warning read of
// the composed snippet and VM (either may be nil).
func (c *composed) readBack(file, vm *unstructured.Unstructured) {
	if file != nil {
		raw, _, _ := unstructured.NestedFieldNoCopy(file.Object, "spec", "forProvider", "sourceRaw")
		if l, _ := raw.([]any); len(l) > 0 {
			c.data, _ = l[0].(map[string]any)["data"].(string)
			c.hasData = true
		}
		c.fileNode, _, _ = unstructured.NestedString(file.Object, "spec", "forProvider", "nodeName")
		c.fileDatastore, _, _ = unstructured.NestedString(file.Object, "spec", "forProvider", "datastoreId")
	}
	if vm != nil {
		c.vmNode, _, _ = unstructured.NestedString(vm.Object, "spec", "forProvider", "nodeName")
	}
}

// composeStructs is composeMaps building the Structs directly; ok is false
// when it cannot make what composeMaps makes (b.invalid).
func composeStructs(b *structBuilder, a machineArgs) (composed, bool) {
	b.invalid = false
	file := fileStruct(b, a.xrName, a.m, a.userData)
	vm := vmStruct(b, a.xrName, a.owner, a.m, a.diskGiB, a.pols)
	fileFP := &structForProvider{b: b, s: forProviderOf(file)}
	vmFP := &structForProvider{b: b, s: forProviderOf(vm)}
	c := composed{file: file, vm: vm}
	c.fileKept = compose.KeepCreateOnlyIn(compose.FileKind, fileFP, a.obs.file)
	c.vmKept = compose.KeepCreateOnlyIn(compose.VMKind, vmFP, a.obs.vm)
	c.defaultsKept = compose.KeepDefaultsIn(vmFP, a.obs.vm, a.spec)
	if c.movedTo = movedTo(vmFP.s.Fields["nodeName"].GetStringValue(), a.obs.vm); c.movedTo != "" {
		vmFP.s.Fields["nodeName"] = b.str(c.movedTo)
	}
	if fileFP.invalid || vmFP.invalid || b.invalid {
		return composed{}, false
	}

	ff := fileFP.s.Fields
	if l := ff["sourceRaw"].GetListValue().GetValues(); len(l) > 0 {
		c.data, c.hasData = l[0].GetStructValue().GetFields()["data"].GetStringValue(), true
	}
	c.fileNode = ff["nodeName"].GetStringValue()
	c.fileDatastore = ff["datastoreId"].GetStringValue()
	c.vmNode = vmFP.s.Fields["nodeName"].GetStringValue()
	return c, true
}

func forProviderOf(s *structpb.Struct) *structpb.Struct {
	return s.Fields["spec"].GetStructValue().Fields["forProvider"].GetStructValue()
}

// fileStruct is compose.File as a Struct.
func fileStruct(b *structBuilder, xrName string, m *machine.Resolved, userData string) *structpb.Struct {
	raw := b.obj(2)
	raw.Fields["data"] = b.str(userData)
	raw.Fields["fileName"] = b.str(compose.SnippetFileName(m))
	fp := b.obj(5)
	fp.Fields["contentType"] = b.str("snippets")
	fp.Fields["datastoreId"] = b.str(m.SnippetDatastore)
	fp.Fields["nodeName"] = b.str(m.Proxmox.Node)
	fp.Fields["overwrite"] = b.boolean(false)
	fp.Fields["sourceRaw"] = b.list(b.structValue(raw))
	return objectStruct(b, compose.FileAPIVersion, compose.FileKind, xrName+"-"+compose.UserData, compose.SnippetID(m), m, fp, compose.ManagementPolicies)
}

// vmStruct is compose.VirtualMachine as a Struct, with the management
// policies pols.
func vmStruct(b *structBuilder, xrName, owner string, m *machine.Resolved, diskGiB int64, pols []any) *structpb.Struct {
	obj := func(kv ...any) *structpb.Value {
		s := b.obj(len(kv) / 2)
		for i := 0; i < len(kv); i += 2 {
			s.Fields[kv[i].(string)] = kv[i+1].(*structpb.Value)
		}
		return b.structValue(s)
	}
	clone := b.obj(5)
	clone.Fields["vmId"] = b.num(float64(m.Image.TemplateVMID))
	clone.Fields["full"] = b.boolean(true)
	clone.Fields["datastoreId"] = b.str(m.Proxmox.Storage)
	clone.Fields["retries"] = b.num(compose.CloneRetries)
	if m.Image.Node != "" && m.Image.Node != m.Proxmox.Node {
		clone.Fields["nodeName"] = b.str(m.Image.Node)
	}
	cpu := b.obj(2)
	cpu.Fields["cores"] = b.num(float64(m.Class.Cores))
	if m.CPUType != "" {
		cpu.Fields["type"] = b.str(m.CPUType)
	}
	nic := b.obj(3)
	nic.Fields["bridge"] = b.str(m.Proxmox.Bridge)
	nic.Fields["model"] = b.str("virtio")
	if m.Proxmox.VLAN != nil {
		nic.Fields["vlanId"] = b.num(float64(*m.Proxmox.VLAN))
	}
	ipv4 := obj("address", b.str("dhcp"))
	if !m.Network.DHCP {
		ipv4 = obj("address", b.str(m.IPv4CIDR), "gateway", b.str(m.Network.Gateway))
	}
	init := b.obj(4)
	init.Fields["datastoreId"] = b.str(m.Proxmox.Storage)
	init.Fields["ipConfig"] = b.list(obj("ipv4", b.list(ipv4)))
	init.Fields["userDataFileId"] = b.str(compose.SnippetID(m))
	if m.Domain != "" || len(m.DNS) > 0 {
		dns := b.obj(2)
		if m.Domain != "" {
			dns.Fields["domain"] = b.str(m.Domain)
		}
		if len(m.DNS) > 0 {
			dns.Fields["servers"] = b.strList(m.DNS)
		}
		init.Fields["dns"] = b.list(b.structValue(dns))
	}
	fp := b.obj(22)
	f := fp.Fields
	f["name"] = b.str(m.Hostname)
	f["nodeName"] = b.str(m.Proxmox.Node)
	f["description"] = b.str(m.FQDN + ": " + compose.Mark(owner) + "; edits here are overwritten")
	f["poolId"] = b.str(compose.Pool)
	f["clone"] = b.list(b.structValue(clone))
	f["cpu"] = b.list(b.structValue(cpu))
	f["memory"] = b.list(obj("dedicated", b.num(float64(m.Class.MemoryMiB))))
	f["disk"] = b.list(obj("interface", b.str(m.Image.DiskInterface), "datastoreId", b.str(m.Proxmox.Storage),
		"size", b.num(float64(diskGiB)), "discard", b.str("on")))
	f["bootOrder"] = b.list(b.str(m.Image.DiskInterface))
	f["scsiHardware"] = b.str(m.Image.SCSIHardware)
	f["networkDevice"] = b.list(b.structValue(nic))
	f["initialization"] = b.list(b.structValue(init))
	f["agent"] = b.list(obj("enabled", b.boolean(true), "timeout", b.str(compose.AgentTimeout)))
	f["operatingSystem"] = b.list(obj("type", b.str("l26")))
	f["started"] = b.boolean(true)
	f["onBoot"] = b.boolean(true)
	f["stopOnDestroy"] = b.boolean(true)
	f["timeoutReboot"] = b.num(compose.RebootTimeout)
	if len(m.Tags) > 0 {
		f["tags"] = b.strList(m.Tags)
	}
	f["vmId"] = b.num(float64(*m.Proxmox.VMID))
	return objectStruct(b, compose.VMAPIVersion, compose.VMKind, xrName+"-"+compose.VM, strconv.FormatInt(*m.Proxmox.VMID, 10), m, fp, pols)
}

// objectStruct is compose's object as a Struct, with the management
// policies pols.
func objectStruct(b *structBuilder, apiVersion, kind, name, externalName string, m *machine.Resolved, forProvider *structpb.Struct, pols []any) *structpb.Struct {
	labels := b.obj(2)
	labels.Fields[compose.LabelHostname] = b.str(m.Hostname)
	if m.Role != "" {
		labels.Fields[compose.LabelRole] = b.str(m.Role)
	}
	annotations := b.obj(1)
	annotations.Fields[compose.AnnotationExternalName] = b.str(externalName)
	md := b.obj(3)
	md.Fields["name"] = b.str(name)
	md.Fields["labels"] = b.structValue(labels)
	md.Fields["annotations"] = b.structValue(annotations)
	pcr := b.obj(1)
	pcr.Fields["name"] = b.str(m.ProviderConfig)
	spec := b.obj(3)
	pv, err := b.newValue(pols)
	if err != nil {
		b.invalid = true
	}
	spec.Fields["managementPolicies"] = pv
	spec.Fields["providerConfigRef"] = b.structValue(pcr)
	spec.Fields["forProvider"] = b.structValue(forProvider)
	x := b.obj(4)
	x.Fields["apiVersion"] = b.str(apiVersion)
	x.Fields["kind"] = b.str(kind)
	x.Fields["metadata"] = b.structValue(md)
	x.Fields["spec"] = b.structValue(spec)
	return x
}

// leaseStruct is compose.IdentityObject(id, holder) as a Struct (nil when
// b cannot make it as structpb would: b.invalid).
func leaseStruct(b *structBuilder, id compose.Identity, holder string) *structpb.Struct {
	b.invalid = false
	md := b.obj(2)
	md.Fields["name"] = b.str(id.Name)
	md.Fields["namespace"] = b.str(compose.IdentityNamespace)
	spec := b.obj(1)
	spec.Fields["holderIdentity"] = b.str(holder)
	x := b.obj(4)
	x.Fields["apiVersion"] = b.str(compose.IdentityAPIVersion)
	x.Fields["kind"] = b.str(compose.IdentityKind)
	x.Fields["metadata"] = b.structValue(md)
	x.Fields["spec"] = b.structValue(spec)
	if b.invalid {
		return nil
	}
	return x
}

func (b *structBuilder) strList(ss []string) *structpb.Value {
	l := b.listOf(len(ss))
	for i, s := range ss {
		l.Values[i] = b.str(s)
	}
	return b.listValue(l)
}

// structForProvider is a composed Struct's spec.forProvider as
// compose.ForProvider: Get and Set read and change it as compose's get and
// set do the map (TestStructForProvider).
type structForProvider struct {
	b *structBuilder
	s *structpb.Struct
	// invalid: Set was given a value structpb refuses.
	invalid bool
}

func (t *structForProvider) Get(path []string) (any, bool) {
	fields := t.s.GetFields()
	var v *structpb.Value
	for i, p := range path {
		if i > 0 {
			switch k := v.GetKind().(type) {
			case *structpb.Value_StructValue:
				fields = k.StructValue.GetFields()
			case *structpb.Value_ListValue:
				l := k.ListValue.GetValues()
				if p != "0" || len(l) == 0 {
					return nil, false
				}
				v = l[0]
				continue
			default:
				return nil, false
			}
		}
		var ok bool
		if v, ok = fields[p]; !ok {
			return nil, false
		}
	}
	return v.AsInterface(), true
}

func (t *structForProvider) Set(path []string, val any) {
	nv, err := t.b.newValue(val)
	if err != nil {
		t.invalid = true
		return
	}
	// cur is the container path[i] is looked up in: fields or list (nil
	// both: a scalar, where set changes nothing).
	fields := t.s.Fields
	var list []*structpb.Value
	for i, p := range path {
		last := i == len(path)-1
		var next *structpb.Value
		switch {
		case fields != nil:
			if last {
				fields[p] = nv
				return
			}
			var ok bool
			if next, ok = fields[p]; !ok {
				next = t.b.structValue(t.b.obj(0))
				if path[i+1] == "0" {
					next = t.b.list(next)
				}
				fields[p] = next
			}
		case list != nil:
			if len(list) == 0 {
				return
			}
			if last {
				list[0] = nv
				return
			}
			next = list[0]
		default:
			continue
		}
		fields, list = nil, nil
		switch k := next.GetKind().(type) {
		case *structpb.Value_StructValue:
			fields = k.StructValue.GetFields()
		case *structpb.Value_ListValue:
			list = k.ListValue.GetValues()
			if list == nil {
				list = []*structpb.Value{}
			}
		}
	}
}

func (t *structForProvider) Delete(field string) { delete(t.s.Fields, field) }
