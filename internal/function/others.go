package function

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// MachinesRequirement is the name under which the function asks Crossplane
// for every XMachine: claims need not come from one repository, so only the
// cluster knows which VM ids, host names and addresses are taken.
const MachinesRequirement = "xmachines"

// other is what the function compares of another XMachine.
type other struct {
	name, claim       string
	created           time.Time
	hostname, ip      string
	vmID              int64
	hasVMID, deleting bool
	// composed: it has resources (its VM may exist); refused: the function
	// refused it (Valid=False).
	composed, refused bool
}

// otherMachines asks Crossplane for every XMachine and returns them once the
// request carries them.
func otherMachines(req *fnv1.RunFunctionRequest, rsp *fnv1.RunFunctionResponse) ([]other, bool) {
	require(rsp, MachinesRequirement, &fnv1.ResourceSelector{
		ApiVersion: machine.APIVersion,
		Kind:       machine.XRKind,
		Match:      &fnv1.ResourceSelector_MatchLabels{MatchLabels: &fnv1.MatchLabels{Labels: map[string]string{}}},
	})
	rrs, ok := req.GetRequiredResources()[MachinesRequirement]
	if !ok {
		return nil, false
	}
	out := make([]other, 0, len(rrs.GetItems()))
	for _, it := range rrs.GetItems() {
		out = append(out, readOther(it.GetResource()))
	}
	return out, true
}

// readOther reads the few fields it needs straight from the Struct: with
// hundreds of machines, decoding each whole would cost more than composing.
func readOther(s *structpb.Struct) other {
	f := s.GetFields()
	meta := f["metadata"].GetStructValue().GetFields()
	spec := f["spec"].GetStructValue().GetFields()
	o := other{name: meta["name"].GetStringValue(), hostname: spec["hostname"].GetStringValue()}
	o.created, _ = time.Parse(time.RFC3339, meta["creationTimestamp"].GetStringValue())
	_, o.deleting = meta["deletionTimestamp"]
	if cr := spec["claimRef"].GetStructValue().GetFields(); cr != nil {
		o.claim = cr["namespace"].GetStringValue() + "/" + cr["name"].GetStringValue()
	}
	if net := spec["network"].GetStructValue().GetFields(); net != nil && !net["dhcp"].GetBoolValue() {
		o.ip = net["ip"].GetStringValue()
	}
	if id, ok := spec["proxmox"].GetStructValue().GetFields()["vmId"]; ok {
		o.vmID, o.hasVMID = int64(id.GetNumberValue()), true
	}
	o.composed = len(spec["resourceRefs"].GetListValue().GetValues()) > 0
	for _, c := range f["status"].GetStructValue().GetFields()["conditions"].GetListValue().GetValues() {
		cf := c.GetStructValue().GetFields()
		if cf["type"].GetStringValue() == ConditionValid && cf["status"].GetStringValue() == "False" {
			o.refused = true
		}
	}
	return o
}

// conflicts refuses a machine whose VM id, host name or static address is
// already another's: one that has composed resources (its VM may exist), or
// an older one the function has not refused (by creation, then name). So of
// two clashing claims exactly one is refused, always the same one, and a
// refused claim holds nothing until it is fixed.
func conflicts(s *machine.Spec, xr map[string]any, others []other) machine.Errors {
	meta, _ := xr["metadata"].(map[string]any)
	self := other{name: fmt.Sprint(meta["name"])}
	self.created, _ = time.Parse(time.RFC3339, fmt.Sprint(meta["creationTimestamp"]))
	var errs machine.Errors
	for _, o := range others {
		if o.name == self.name || o.deleting || !(o.composed || older(o, self) && !o.refused) {
			continue
		}
		who := "XMachine " + o.name
		if o.claim != "" {
			who = "Machine " + o.claim
		}
		if o.hasVMID && s.Proxmox.VMID != nil && o.vmID == *s.Proxmox.VMID {
			errs = append(errs, &machine.FieldError{Field: "spec.proxmox.vmId", Value: fmt.Sprint(o.vmID),
				Detail: "is already the VM id of " + who + "; two claims on one id would manage one VM. Pick a free id"})
		}
		if o.hostname != "" && o.hostname == s.Hostname {
			errs = append(errs, &machine.FieldError{Field: "spec.hostname", Value: o.hostname,
				Detail: "is already the host name of " + who + "; each machine needs its own"})
		}
		if o.ip != "" && !s.Network.DHCP && o.ip == s.Network.IP {
			errs = append(errs, &machine.FieldError{Field: "spec.network.ip", Value: o.ip,
				Detail: "is already the address of " + who + "; each machine needs its own"})
		}
	}
	return errs
}

func older(a, b other) bool {
	if !a.created.Equal(b.created) {
		return a.created.Before(b.created)
	}
	return a.name < b.name
}
