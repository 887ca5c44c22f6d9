package function

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/types/known/structpb"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/compose"
)

// NewRequest builds the request Crossplane would send for xr: the function
// input (JSON, from the Composition), the observed XR, the observed composed
// resources by name (nil when nothing exists yet), and the resources the
// function requires, by requirement name (a name with no objects is a
// requirement Crossplane found nothing for). labctl render and the tests
// use it to run the function in-process.
func NewRequest(xr map[string]any, input []byte, observed map[string]map[string]any, required map[string][]map[string]any) (*fnv1.RunFunctionRequest, error) {
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
	for name, objs := range required {
		if req.RequiredResources == nil {
			req.RequiredResources = map[string]*fnv1.Resources{}
		}
		rs := &fnv1.Resources{}
		for _, o := range objs {
			st, err := toStruct(o)
			if err != nil {
				return nil, fmt.Errorf("cannot encode required resource %s: %w", name, err)
			}
			rs.Items = append(rs.Items, &fnv1.Resource{Resource: st})
		}
		req.RequiredResources[name] = rs
	}
	return req, nil
}

// Offline is the requirement answer of a run without a cluster (labctl
// render): no machine holds any identity, and no running state is known.
func Offline() map[string][]map[string]any {
	out := map[string][]map[string]any{RunningStateRequirement: nil}
	for _, r := range compose.IdentityRequirements {
		out[r] = nil
	}
	return out
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

// Applied is the observed state once Crossplane has applied what rsp
// desires and the provider has acted on it: every resource the provider
// may make exists and is Ready (the identities held, the snippet
// uploaded), and an Observe-only VM is reported absent, as the provider
// reports a VM id no VM has. The function composes the snippet only once
// the identities are held, the VM only once the snippet exists, and lets
// the provider create it only once it is known absent, so labctl render and
// the tests run it again with this until Composed.
func Applied(rsp *fnv1.RunFunctionResponse) map[string]map[string]any {
	out := map[string]map[string]any{}
	for name, r := range rsp.GetDesired().GetResources() {
		obj := r.GetResource().AsMap()
		obj["status"] = map[string]any{"conditions": []any{
			map[string]any{"type": "Ready", "status": "True", "reason": "Available"},
			map[string]any{"type": "Synced", "status": "True", "reason": "ReconcileSuccess"},
		}}
		if pols, _, _ := unstructured.NestedSlice(obj, "spec", "managementPolicies"); len(pols) > 0 && !managesFully(pols) {
			obj["status"] = map[string]any{"conditions": []any{
				map[string]any{"type": "Synced", "status": "False", "reason": "ReconcileError", "message": notExist},
			}}
		}
		out[name] = obj
	}
	return out
}

// Composed reports whether rsp desires the machine's VM for the provider
// to make: the function's last step.
func Composed(rsp *fnv1.RunFunctionResponse) bool {
	vm := rsp.GetDesired().GetResources()[compose.VM]
	if vm == nil {
		return false
	}
	// Only the policies are decoded, not the VM.
	pols := vm.GetResource().GetFields()["spec"].GetStructValue().GetFields()["managementPolicies"]
	return managesFully(pols.GetListValue().AsSlice())
}
