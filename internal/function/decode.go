package function

import (
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// The request's objects are decoded only as far as the function reads
// them: decoding whole objects (the XR's status, every provider-reported
// field, the managed fields) was a fifth of its CPU per call, and those
// parts are what grows with a resource's history (issue 21).

// compositeOf is the observed XR as far as the function reads it as an
// object: without its status and managed fields, and of its spec only
// spec.claimRef (the claim's name and namespace). The Machine spec is
// decoded into its own type once per XR (specOf, validSpecs).
func compositeOf(s *structpb.Struct) map[string]any {
	return decodeExcept(s, func(k string, v *structpb.Value) any {
		switch k {
		case "status":
			return skip
		case "metadata":
			return metadataOf(v)
		case "spec":
			spec := v.GetStructValue()
			if spec == nil {
				return v.AsInterface()
			}
			return decodeExcept(spec, func(k string, v *structpb.Value) any {
				if k != "claimRef" {
					return skip
				}
				return v.AsInterface()
			})
		}
		return v.AsInterface()
	})
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

// observedOf is an observed composed resource as the function reads it:
// whole, but for the managed fields and the status.atProvider fields it
// does not read.
func observedOf(s *structpb.Struct) map[string]any {
	return decodeExcept(s, func(k string, v *structpb.Value) any {
		switch k {
		case "metadata":
			return metadataOf(v)
		case "status":
			st := v.GetStructValue()
			if st == nil {
				return v.AsInterface()
			}
			return decodeExcept(st, func(k string, v *structpb.Value) any {
				at := v.GetStructValue()
				if k != "atProvider" || at == nil {
					return v.AsInterface()
				}
				out := make(map[string]any, len(atProviderRead))
				for _, f := range atProviderRead {
					if x, ok := at.GetFields()[f]; ok {
						out[f] = x.AsInterface()
					}
				}
				return out
			})
		}
		return v.AsInterface()
	})
}

// metadataOf is an object's metadata without its managed fields.
func metadataOf(v *structpb.Value) any {
	md := v.GetStructValue()
	if md == nil {
		return v.AsInterface()
	}
	return decodeExcept(md, func(k string, v *structpb.Value) any {
		if k == "managedFields" {
			return skip
		}
		return v.AsInterface()
	})
}

// skip is what a field decoder returns for a field to leave out.
type skipped struct{}

var skip any = skipped{}

// decodeExcept is s.AsMap() with each field decoded by field, which
// leaves a field out by returning skip.
func decodeExcept(s *structpb.Struct, field func(string, *structpb.Value) any) map[string]any {
	out := make(map[string]any, len(s.GetFields()))
	for k, v := range s.GetFields() {
		if x := field(k, v); x != skip {
			out[k] = x
		}
	}
	return out
}
