// Package function is function-machine's logic (decision D2): it reads an
// XMachine and the function input (classes, images, site defaults), and
// returns the desired EnvironmentFile and EnvironmentVM, the XR's status and
// the composed resources' readiness. cmd/function-machine serves it over
// gRPC; labctl render calls it in-process, so both print the same thing.
package function

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/crossplane/function-sdk-go/logging"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/request"
	"github.com/crossplane/function-sdk-go/response"

	"github.com/homelab-infra/homelab-infra/internal/cloudinit"
	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// ConditionValid is the condition the function sets on the XR and its claim:
// False, with the message naming the field and the fix, when it refuses the
// Machine; True once it composes it. Crossplane sets Synced=False on the XR
// only, so without it the claim would show no sign of a refusal but an event.
const ConditionValid = "Valid"

// Reasons of ConditionValid.
const (
	ReasonValid   = "Composed"
	ReasonInvalid = "Refused"
)

// SSHKeysRequirement is the name under which the function asks Crossplane for
// the Secret named by spec.bootstrap.sshAuthorizedKeysSecretRef.
const SSHKeysRequirement = "ssh-authorized-keys"

// Function composes Machines.
type Function struct {
	fnv1.UnimplementedFunctionRunnerServiceServer

	Log logging.Logger
}

// RunFunction runs the function once: one XMachine in, its resources out. A
// bad claim or input yields a Fatal result naming the field and no resources.
func (f *Function) RunFunction(_ context.Context, req *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error) {
	rsp := response.To(req, response.DefaultTTL)
	log := f.Log
	if log == nil {
		log = logging.NewNopLogger()
	}

	in, err := Input(req)
	if err != nil {
		fatal(rsp, fmt.Errorf("cannot read the function input in the Composition: %w", err))
		return rsp, nil
	}

	// The request's Structs are read with AsMap and the response built with
	// structpb directly: the SDK's helpers go through protojson, which was
	// most of the function's time (see BenchmarkRunFunction).
	oxr := req.GetObserved().GetComposite().GetResource().AsMap()
	xrName, _, _ := unstructured.NestedString(oxr, "metadata", "name")
	log = log.WithValues("xr", xrName)

	spec, err := SpecOf(oxr)
	if err != nil {
		fatal(rsp, fmt.Errorf("invalid Machine %s, nothing composed:\n%w", xrName, err))
		return rsp, nil
	}
	if errs := machine.Validate(spec, in); len(errs) > 0 {
		log.Info("Invalid Machine", "errors", len(errs))
		fatal(rsp, fmt.Errorf("invalid Machine %s, nothing composed:\n%w", xrName, errs))
		return rsp, nil
	}

	keys, done := secretKeys(req, rsp, spec, oxr)
	if !done {
		// Crossplane fetches the Secret and calls again before it applies
		// anything; until then compose nothing.
		return rsp, nil
	}

	m, err := machine.ResolveValid(spec, in, keys)
	if err != nil {
		fatal(rsp, fmt.Errorf("invalid Machine %s, nothing composed:\n%w", xrName, err))
		return rsp, nil
	}
	userData, err := cloudinit.Render(UserDataConfig(m))
	if err != nil {
		fatal(rsp, err)
		return rsp, nil
	}

	// Readiness and the XR's status need only the observed resources'
	// status: convert that, not their whole spec, once per resource.
	observed := map[string]map[string]any{}
	for name, r := range req.GetObserved().GetResources() {
		if st, ok := r.GetResource().GetFields()["status"]; ok {
			observed[name] = map[string]any{"status": st.AsInterface()}
		}
	}
	if rsp.Desired == nil {
		rsp.Desired = &fnv1.State{}
	}
	if rsp.Desired.Resources == nil {
		rsp.Desired.Resources = map[string]*fnv1.Resource{}
	}
	for _, r := range compose.Resources(xrName, claimOf(oxr, xrName), m, userData) {
		st, err := structpb.NewStruct(r.Object.Object)
		if err != nil {
			fatal(rsp, fmt.Errorf("cannot encode composed resource %s: %w", r.Name, err))
			return rsp, nil
		}
		// Resources of earlier pipeline steps, copied by response.To, stay.
		rsp.Desired.Resources[r.Name] = &fnv1.Resource{Resource: st, Ready: readiness(observed[r.Name])}
	}

	if err := setStatus(rsp, Status(m, observed[compose.VM])); err != nil {
		fatal(rsp, fmt.Errorf("cannot set the XMachine's status: %w", err))
		return rsp, nil
	}
	response.ConditionTrue(rsp, ConditionValid, ReasonValid).TargetCompositeAndClaim()
	log.Debug("Composed Machine", "hostname", m.Hostname, "node", m.Proxmox.Node)
	return rsp, nil
}

// claimOf names the Machine claim behind the XR as namespace/name. Crossplane
// names a claim's XR <claim>-<random>, which nobody reading the VM in Proxmox
// would recognise; an XR made without a claim is named by itself.
func claimOf(xr map[string]any, xrName string) string {
	ns, _, _ := unstructured.NestedString(xr, "spec", "claimRef", "namespace")
	name, _, _ := unstructured.NestedString(xr, "spec", "claimRef", "name")
	if ns == "" || name == "" {
		return xrName
	}
	return ns + "/" + name
}

// fatal records a Fatal result for the XR and its claim, so `kubectl describe
// machine` shows the message naming the field.
func fatal(rsp *fnv1.RunFunctionResponse, err error) {
	// Crossplane turns a Fatal result into an event and Synced=False on the
	// XR only, whatever its target; results before it become events on the
	// claim too. So the same message goes first as a Warning.
	response.Warning(rsp, err).TargetCompositeAndClaim()
	response.ConditionFalse(rsp, ConditionValid, ReasonInvalid).WithMessage(err.Error()).TargetCompositeAndClaim()
	response.Fatal(rsp, err)
	rsp.Results[len(rsp.Results)-1].Target = fnv1.Target_TARGET_COMPOSITE_AND_CLAIM.Enum()
}

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

// SpecOf reads the Machine spec out of an XR or claim object. Fields that
// Crossplane adds to the spec (claimRef, compositionRef, ...) are ignored.
func SpecOf(obj map[string]any) (*machine.Spec, error) {
	raw, ok := obj["spec"]
	if !ok {
		return nil, fmt.Errorf("spec is missing")
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("cannot encode spec: %w", err)
	}
	return machine.DecodeSpec(b)
}

// UserDataConfig is what cloud-init is told about m.
func UserDataConfig(m *machine.Resolved) cloudinit.Config {
	return cloudinit.Config{
		Hostname:  m.Hostname,
		FQDN:      m.FQDN,
		AdminUser: m.Bootstrap.AdminUser,
		Keys:      m.Keys,
		FlakeRef:  m.Nix.FlakeRef,
	}
}

// secretKeys returns the authorized keys held by the Secret the spec names,
// asking Crossplane for it when the request does not carry it yet. done is
// false while the Secret has not been fetched (or on a Fatal result).
func secretKeys(req *fnv1.RunFunctionRequest, rsp *fnv1.RunFunctionResponse, s *machine.Spec, xr map[string]any) (keys []string, done bool) {
	ref := s.Bootstrap.SSHAuthorizedKeysSecretRef
	if ref == nil {
		return nil, true
	}
	field := "spec.bootstrap.sshAuthorizedKeysSecretRef"
	ns := ref.Namespace
	if ns == "" {
		ns, _, _ = unstructured.NestedString(xr, "spec", "claimRef", "namespace")
	}
	if ns == "" {
		fatal(rsp, fmt.Errorf("%s.namespace is required: this XMachine has no claim whose namespace it could default to", field))
		return nil, false
	}
	key := ref.Key
	if key == "" {
		key = machine.DefaultSecretKey
	}
	// Ask every time: Crossplane only supplies what the latest response requires.
	rsp.Requirements = &fnv1.Requirements{Resources: map[string]*fnv1.ResourceSelector{
		SSHKeysRequirement: {
			ApiVersion: "v1",
			Kind:       "Secret",
			Match:      &fnv1.ResourceSelector_MatchName{MatchName: ref.Name},
			Namespace:  &ns,
		},
	}}
	secrets, resolved, err := request.GetRequiredResource(req, SSHKeysRequirement)
	if err != nil {
		fatal(rsp, fmt.Errorf("cannot read the Secret named by %s: %w", field, err))
		return nil, false
	}
	if !resolved {
		return nil, false
	}
	if len(secrets) == 0 {
		fatal(rsp, fmt.Errorf("%s: Secret %s/%s not found; create it with the public keys under key %q, one per line", field, ns, ref.Name, key))
		return nil, false
	}
	v, ok, _ := unstructured.NestedString(secrets[0].Resource.Object, "data", key)
	if !ok {
		fatal(rsp, fmt.Errorf("%s: Secret %s/%s has no key %q; put the public keys under it, one per line", field, ns, ref.Name, key))
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		fatal(rsp, fmt.Errorf("%s: Secret %s/%s key %q is not base64 data", field, ns, ref.Name, key))
		return nil, false
	}
	return strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n"), true
}

// readiness is a composed resource's readiness: ready once the provider says
// so through its Ready condition, not before and not on a guess.
func readiness(observed map[string]any) fnv1.Ready {
	conds, _, _ := unstructured.NestedSlice(observed, "status", "conditions")
	for _, c := range conds {
		cm, ok := c.(map[string]any)
		if ok && cm["type"] == "Ready" && cm["status"] == "True" {
			return fnv1.Ready_READY_TRUE
		}
	}
	return fnv1.Ready_READY_FALSE
}

// setStatus merges st into the desired XR's status, keeping what earlier
// pipeline steps set.
func setStatus(rsp *fnv1.RunFunctionResponse, st map[string]any) error {
	if rsp.Desired.Composite == nil {
		rsp.Desired.Composite = &fnv1.Resource{}
	}
	xr := rsp.Desired.Composite
	if xr.Resource == nil {
		xr.Resource = &structpb.Struct{Fields: map[string]*structpb.Value{}}
	}
	status := xr.Resource.GetFields()["status"].GetStructValue()
	if status == nil {
		status = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		xr.Resource.Fields["status"] = structpb.NewStructValue(status)
	}
	for k, v := range st {
		pv, err := structpb.NewValue(v)
		if err != nil {
			return err
		}
		status.Fields[k] = pv
	}
	return nil
}

// Status is the XMachine's status: what was asked for (flake ref, node) and
// what the provider observed of the VM (its id and IPv4 addresses).
func Status(m *machine.Resolved, vm map[string]any) map[string]any {
	st := map[string]any{"flakeRef": m.Nix.FlakeRef, "node": m.Proxmox.Node}
	at, ok := vm["status"].(map[string]any)
	if ok {
		at, ok = at["atProvider"].(map[string]any)
	}
	if !ok {
		return st
	}
	switch id := at["vmId"].(type) {
	case int64:
		st["vmId"] = id
	case float64:
		st["vmId"] = int64(id)
	}
	if addrs := IPv4Addresses(at["ipv4Addresses"]); len(addrs) > 0 {
		st["ipv4Addresses"] = addrs
	}
	return st
}

// IPv4Addresses flattens the provider's per-interface address lists, leaving
// out loopback and link-local addresses, in a stable order: the first address
// of the first real interface first (the IP printer column shows it).
func IPv4Addresses(v any) []any {
	perNIC, _ := v.([]any)
	var out []any
	seen := map[string]bool{}
	for _, nic := range perNIC {
		addrs, _ := nic.([]any)
		for _, a := range addrs {
			s, ok := a.(string)
			if !ok || s == "" || seen[s] || strings.HasPrefix(s, "127.") || strings.HasPrefix(s, "169.254.") {
				continue
			}
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
