package function

import (
	"fmt"

	"google.golang.org/protobuf/types/known/structpb"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// identityDetail is what a refusal adds after "is already the <what> of
// <holder>", by requirement.
var identityDetail = map[string]string{
	"identity-vmid":     "; two claims on one id would manage one VM. Pick a free id",
	"identity-hostname": "; each machine needs its own",
	"identity-ip":       "; each machine needs its own",
}

// identities asks Crossplane for the objects holding the machine's
// identities (compose.Identities), by name: one read each, however many
// machines exist. done is false until the request carries all of them.
// errs names each identity another machine holds, and who holds it.
func identities(req *fnv1.RunFunctionRequest, rsp *fnv1.RunFunctionResponse, ids []compose.Identity, xrUID string) (errs machine.Errors, done bool) {
	ns := compose.IdentityNamespace
	done = true
	for _, id := range ids {
		require(rsp, id.Requirement, &fnv1.ResourceSelector{
			ApiVersion: compose.IdentityAPIVersion,
			Kind:       compose.IdentityKind,
			Match:      &fnv1.ResourceSelector_MatchName{MatchName: id.Name},
			Namespace:  &ns,
		})
		rrs, ok := req.GetRequiredResources()[id.Requirement]
		if !ok {
			done = false
			continue
		}
		for _, it := range rrs.GetItems() {
			holder, held := heldByOther(it.GetResource(), xrUID)
			if !held {
				continue
			}
			errs = append(errs, &machine.FieldError{Field: id.Field, Value: id.Value,
				Detail: "is already the " + id.What + " of " + holder + identityDetail[id.Requirement]})
		}
	}
	return errs, done
}

// heldByOther reports whether an identity object is controlled by another
// XR than the one with uid xrUID, and names its holder. An object without a
// controller (its XR was deleted orphaning it) is free: Crossplane adopts it
// when it applies it.
func heldByOther(s *structpb.Struct, xrUID string) (string, bool) {
	f := s.GetFields()
	meta := f["metadata"].GetStructValue().GetFields()
	for _, ref := range meta["ownerReferences"].GetListValue().GetValues() {
		r := ref.GetStructValue().GetFields()
		if !r["controller"].GetBoolValue() {
			continue
		}
		if xrUID != "" && r["uid"].GetStringValue() == xrUID {
			return "", false
		}
		if h := f["spec"].GetStructValue().GetFields()["holderIdentity"].GetStringValue(); h != "" {
			return h, true
		}
		return fmt.Sprintf("%s %s", r["kind"].GetStringValue(), r["name"].GetStringValue()), true
	}
	return "", false
}

// allHeld reports whether Crossplane observes every identity object as this
// XR's: it leaves out of the observed resources any object another XR
// controls, so observed means held.
func allHeld(req *fnv1.RunFunctionRequest, ids []compose.Identity) bool {
	for _, id := range ids {
		if _, ok := req.GetObserved().GetResources()[id.Name]; !ok {
			return false
		}
	}
	return true
}

// holderName is how an identity object names its holder: the claim, or the
// XR when it has no claim.
func holderName(xr map[string]any, xrName string) string {
	if owner := claimOf(xr, xrName); owner != xrName {
		return "Machine " + owner
	}
	return "XMachine " + xrName
}

// holdAsObserved desires the machine's existing snippet and VM, and the
// identities it holds, as they are (their spec, name, labels and Proxmox
// name), so that Crossplane neither deletes them (it deletes what is no
// longer desired) nor changes them.
func holdAsObserved(enc *structBuilder, req *fnv1.RunFunctionRequest, rsp *fnv1.RunFunctionResponse, obs observed) error {
	for name, r := range req.GetObserved().GetResources() {
		if !compose.IsIdentity(name) || rsp.GetDesired().GetResources()[name] != nil {
			continue
		}
		u := &unstructured.Unstructured{Object: r.GetResource().AsMap()}
		o := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": u.GetAPIVersion(), "kind": u.GetKind(),
			"metadata": map[string]any{"name": u.GetName(), "namespace": u.GetNamespace()},
			"spec":     u.Object["spec"],
		}}
		if err := enc.desire(rsp, name, o, fnv1.Ready_READY_TRUE); err != nil {
			return err
		}
	}
	for _, name := range []string{compose.UserData, compose.VM} {
		r, ok := req.GetObserved().GetResources()[name]
		if !ok {
			continue
		}
		// Whole: obs holds only what the function reads (observedOf).
		u := &unstructured.Unstructured{Object: r.GetResource().AsMap()}
		meta := map[string]any{"name": u.GetName()}
		if l, ok, _ := unstructured.NestedMap(u.Object, "metadata", "labels"); ok {
			meta["labels"] = l
		}
		if ext := u.GetAnnotations()[compose.AnnotationExternalName]; ext != "" {
			meta["annotations"] = map[string]any{compose.AnnotationExternalName: ext}
		}
		spec, _, _ := unstructured.NestedMap(u.Object, "spec")
		held := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": u.GetAPIVersion(), "kind": u.GetKind(), "metadata": meta, "spec": spec,
		}}
		ready := obs.fileReady()
		if name == compose.VM {
			ready = obs.vmReady()
		}
		if err := enc.desire(rsp, name, held, ready); err != nil {
			return err
		}
	}
	return nil
}
