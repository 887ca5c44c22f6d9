package function

import (
	"encoding/json"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// Input decodes the function input strictly: an unknown field in the
// Composition is an error, not a silently ignored typo.
func Input(req *fnv1.RunFunctionRequest) (*machine.Input, error) {
	if req.GetInput() == nil {
		return nil, fmt.Errorf("the pipeline step has no input; give it the classes, images and defaults (see crossplane/composition.yaml)")
	}
	return inputCache.parse(req.GetInput())
}

// inputCache keeps the last parsed input: every XR of a Composition carries
// the same one, so it is decoded and checked once, not on every reconcile.
var inputCache cachedInput

type cachedInput struct {
	mu  sync.Mutex
	src *structpb.Struct // a copy of the input in was parsed from
	in  *machine.Input
}

func (c *cachedInput) parse(src *structpb.Struct) (*machine.Input, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.in != nil && sameStruct(c.src, src) {
		return c.in, nil
	}
	// AsMap and encoding/json are several times cheaper than protojson.
	b, err := json.Marshal(src.AsMap())
	if err != nil {
		return nil, fmt.Errorf("cannot encode the input: %w", err)
	}
	in, err := machine.ParseInput(b)
	if err != nil {
		return nil, err
	}
	c.src, c.in = proto.Clone(src).(*structpb.Struct), in
	return in, nil
}

// sameStruct reports whether two Structs hold the same values. It walks them
// without allocating: a tenth of the cost of encoding the input to compare
// it, and proto.Equal's reflection allocates on every field.
func sameStruct(a, b *structpb.Struct) bool {
	if a == nil || b == nil {
		return a == b
	}
	if len(a.GetFields()) != len(b.GetFields()) {
		return false
	}
	for k, v := range a.GetFields() {
		w, ok := b.GetFields()[k]
		if !ok || !sameValue(v, w) {
			return false
		}
	}
	return true
}

func sameValue(a, b *structpb.Value) bool {
	switch x := a.GetKind().(type) {
	case *structpb.Value_StructValue:
		y, ok := b.GetKind().(*structpb.Value_StructValue)
		return ok && sameStruct(x.StructValue, y.StructValue)
	case *structpb.Value_ListValue:
		y, ok := b.GetKind().(*structpb.Value_ListValue)
		if !ok || len(x.ListValue.GetValues()) != len(y.ListValue.GetValues()) {
			return false
		}
		for i, v := range x.ListValue.GetValues() {
			if !sameValue(v, y.ListValue.GetValues()[i]) {
				return false
			}
		}
		return true
	case *structpb.Value_StringValue:
		y, ok := b.GetKind().(*structpb.Value_StringValue)
		return ok && x.StringValue == y.StringValue
	case *structpb.Value_NumberValue:
		y, ok := b.GetKind().(*structpb.Value_NumberValue)
		return ok && x.NumberValue == y.NumberValue
	case *structpb.Value_BoolValue:
		y, ok := b.GetKind().(*structpb.Value_BoolValue)
		return ok && x.BoolValue == y.BoolValue
	case *structpb.Value_NullValue:
		_, ok := b.GetKind().(*structpb.Value_NullValue)
		return ok
	}
	return false
}
