package function

import (
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// The request's objects are decoded only as far as the function reads
// them: decoding whole objects (the XR's status, every provider-reported
// field, the managed fields) was a fifth of its CPU per call, and those
// parts are what grows with a resource's history (issue 21).

// compositeOf is the observed XR as far as the function reads it as an
// object: its name and uid, and of its spec only spec.claimRef (the claim's
// name and namespace). The Machine spec is decoded into its own type once
// per XR (specOf, validSpecs).
func compositeOf(s *structpb.Struct) map[string]any {
	return decodeStruct(s, compositeRead)
}

var compositeRead = readTree{
	"metadata": {"name": nil, "uid": nil},
	"spec":     {"claimRef": nil},
}

// specOf is SpecOf for the observed XR s: its spec decoded whole.
func specOf(s *structpb.Struct) (*machine.Spec, error) {
	xr := map[string]any{}
	if v, ok := s.GetFields()["spec"]; ok {
		xr["spec"] = v.AsInterface()
	}
	return SpecOf(xr)
}

// atProviderRead are the fields of a composed resource's
// status.atProvider the function reads (observed.go, ownership.go,
// migration.go, status.go): the VM's node, id, addresses, description and
// disks. The provider reports every argument there too, which is never
// read. A new read must be added here.
var atProviderRead = []string{"nodeName", "vmId", "ipv4Addresses", "description", "disk"}

// observedOf is an observed composed resource as observe reads it: its
// management policies and the spec.forProvider fields the Keep functions
// read (compose.KeptPaths), its conditions' type, status and message, and
// the status.atProvider fields read (atProviderRead). A VM's whole
// forProvider and atProvider (every argument, twice), its metadata and its
// conditions' times were most of what a call decoded (issue 21).
// holdAsObserved, which desires a resource as it is, decodes it whole.
func observedOf(s *structpb.Struct) map[string]any {
	return decodeStruct(s, observedRead)
}

var observedRead = func() readTree {
	forProvider := readTree{}
	for _, path := range compose.KeptPaths() {
		t := forProvider
		for i, p := range path {
			if i == len(path)-1 {
				t[p] = nil
				break
			}
			if t[p] == nil {
				t[p] = readTree{}
			}
			t = t[p]
		}
	}
	atProvider := readTree{}
	for _, f := range atProviderRead {
		atProvider[f] = nil
	}
	return readTree{
		"spec": {"managementPolicies": nil, "forProvider": forProvider},
		"status": {
			"conditions": {"*": {"type": nil, "status": nil, "message": nil}},
			"atProvider": atProvider,
		},
	}
}()

// readTree is what is read of a value: of an object, the fields named; of
// a list, its first element ("0") or every element ("*"). A nil tree reads
// the whole value.
type readTree map[string]readTree

// decodeTree is v.AsInterface() with only what t reads of it. Where v is
// not what t expects (a list for an object, a scalar), it is decoded whole:
// readers find there what they would in the whole value.
func decodeTree(v *structpb.Value, t readTree) any {
	if t == nil {
		return v.AsInterface()
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StructValue:
		return decodeStruct(k.StructValue, t)
	case *structpb.Value_ListValue:
		l := k.ListValue.GetValues()
		if each, ok := t["*"]; ok {
			out := make([]any, len(l))
			for i, e := range l {
				out[i] = decodeTree(e, each)
			}
			return out
		}
		if first, ok := t["0"]; ok {
			if len(l) == 0 {
				return []any{}
			}
			return []any{decodeTree(l[0], first)}
		}
	}
	return v.AsInterface()
}

func decodeStruct(s *structpb.Struct, t readTree) map[string]any {
	fields := s.GetFields()
	out := make(map[string]any, len(t))
	for name, sub := range t {
		if v, ok := fields[name]; ok {
			out[name] = decodeTree(v, sub)
		}
	}
	return out
}
