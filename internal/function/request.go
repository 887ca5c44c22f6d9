package function

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/types/known/structpb"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// NewRequest builds the request Crossplane would send for xr: the function
// input (JSON, from the Composition), the observed XR, and the observed
// composed resources by name (nil when nothing exists yet). labctl render and
// the tests use it to run the function in-process.
func NewRequest(xr map[string]any, input []byte, observed map[string]map[string]any) (*fnv1.RunFunctionRequest, error) {
	in := &structpb.Struct{}
	if err := in.UnmarshalJSON(input); err != nil {
		return nil, fmt.Errorf("cannot decode the function input: %w", err)
	}
	oxr, err := toStruct(xr)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the XR: %w", err)
	}
	req := &fnv1.RunFunctionRequest{
		Meta:     &fnv1.RequestMeta{Tag: "labctl"},
		Input:    in,
		Observed: &fnv1.State{Composite: &fnv1.Resource{Resource: oxr}},
	}
	if len(observed) > 0 {
		req.Observed.Resources = map[string]*fnv1.Resource{}
		for name, o := range observed {
			s, err := toStruct(o)
			if err != nil {
				return nil, fmt.Errorf("cannot encode observed resource %s: %w", name, err)
			}
			req.Observed.Resources[name] = &fnv1.Resource{Resource: s}
		}
	}
	return req, nil
}

// toStruct converts through JSON so that any Go value YAML decoding produced
// (int64, float64, nested maps) becomes a protobuf Struct.
func toStruct(v map[string]any) (*structpb.Struct, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	s := &structpb.Struct{}
	return s, s.UnmarshalJSON(b)
}
