package function

import (
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/cloudinit"
	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// setStatus merges st into the desired XR's status, keeping what earlier
// pipeline steps set. Its Values are b's.
func (b *structBuilder) setStatus(rsp *fnv1.RunFunctionResponse, st map[string]any) error {
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
		pv, err := b.newValue(v)
		if err != nil {
			return err
		}
		status.Fields[k] = pv
	}
	return nil
}

// Status is the XMachine's status: what the machine has, not what a
// Composition default would give a new one. The flake ref is the one in
// the user-data the VM booted with (file, as composed after keeping what
// exists); the node is where Proxmox reports the VM (after a migration too),
// else where it is composed; the VM id and IPv4 addresses are what the
// provider observed (observedVM).
func Status(m *machine.Resolved, file, vm *unstructured.Unstructured, observedVM map[string]any) map[string]any {
	var c composed
	c.readBack(file, vm)
	return status(m, c, observedVM, "")
}

// status is Status from what was composed (c's read-back fields), knowing
// the user-data rendered for m now. A file that
// carries exactly it (a machine whose keys and defaults did not change
// since it was made) names m's flake ref: Render writes it verbatim and
// FlakeRefOf reads it back (FuzzRender, TestFlakeRefOfRender), so the
// file's YAML is parsed only when it differs. Parsing it was a quarter of
// the function's CPU per call.
func status(m *machine.Resolved, c composed, observedVM map[string]any, rendered string) map[string]any {
	st := map[string]any{"flakeRef": m.Nix.FlakeRef, "node": m.Proxmox.Node}
	if c.hasData && (rendered == "" || c.data != rendered) {
		if ref, ok := cloudinit.FlakeRefOf(c.data); ok {
			st["flakeRef"] = ref
		}
	}
	if c.vmNode != "" {
		st["node"] = c.vmNode
	}
	at, ok := observedVM["status"].(map[string]any)
	if ok {
		at, ok = at["atProvider"].(map[string]any)
	}
	if !ok {
		return st
	}
	if n, ok := at["nodeName"].(string); ok && n != "" {
		st["node"] = n
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
