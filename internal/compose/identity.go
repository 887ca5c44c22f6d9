package compose

import (
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// A machine holds its identities, the values no two machines may share (its
// VM id, host name and static address), as composed objects whose names are
// the values: two XRs composing the same name compose one object, and the
// API server lets only one XR control it (a second controller reference is
// invalid; Crossplane then reports the apply as failed and does not observe
// the object as the loser's). So holding an identity is one write checked
// by the API server, and knowing who holds it is one read by name, however
// many machines there are.
//
// The objects are Leases (coordination.k8s.io/v1), a kind every cluster has
// and Crossplane's own ClusterRole already manages, in Crossplane's
// namespace: their spec.holderIdentity names the claim, so a refused claim
// can say which one holds what it asked for.
const (
	IdentityAPIVersion = "coordination.k8s.io/v1"
	IdentityKind       = "Lease"
	IdentityNamespace  = "crossplane-system"
)

// Identity is one value only one machine may hold.
type Identity struct {
	// Requirement is the function's requirement name for the object:
	// identity-vmid, identity-hostname, identity-ip.
	Requirement string
	// Field and Value are the spec field and its value, for messages.
	Field, Value string
	// What the value is, for messages: "VM id", "host name", "address".
	What string
	// Name is the object's name and its composed resource name:
	// machine-<kind>-<value>. A new value is a new composed resource, so
	// the old one is deleted once the new one is held, not renamed.
	Name string
}

// Identities are the values the machine holds: its VM id and host name, and
// its address unless it uses DHCP.
func Identities(s *machine.Spec) []Identity {
	var out []Identity
	if s.Proxmox.VMID != nil {
		v := strconv.FormatInt(*s.Proxmox.VMID, 10)
		out = append(out, Identity{Requirement: "identity-vmid", Field: "spec.proxmox.vmId", Value: v, What: "VM id", Name: "machine-vmid-" + v})
	}
	if s.Hostname != "" {
		out = append(out, Identity{Requirement: "identity-hostname", Field: "spec.hostname", Value: s.Hostname, What: "host name", Name: "machine-hostname-" + s.Hostname})
	}
	if !s.Network.DHCP && s.Network.IP != "" {
		// machine.Validate admits IPv4 only, whose dotted form is a valid
		// object name.
		out = append(out, Identity{Requirement: "identity-ip", Field: "spec.network.ip", Value: s.Network.IP, What: "address", Name: "machine-ip-" + s.Network.IP})
	}
	return out
}

// IdentityRequirements are the requirement names of every identity a
// machine may hold.
var IdentityRequirements = []string{"identity-vmid", "identity-hostname", "identity-ip"}

// IsIdentity reports whether a composed resource name is an identity's.
func IsIdentity(resource string) bool {
	for _, p := range []string{"machine-vmid-", "machine-hostname-", "machine-ip-"} {
		if strings.HasPrefix(resource, p) {
			return true
		}
	}
	return false
}

// IdentityObject is the Lease holding id for the machine whose claim (or
// XR) holder names, e.g. "Machine team/dns01".
func IdentityObject(id Identity, holder string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": IdentityAPIVersion,
		"kind":       IdentityKind,
		"metadata": map[string]any{
			"name":      id.Name,
			"namespace": IdentityNamespace,
		},
		"spec": map[string]any{"holderIdentity": holder},
	}}
}
