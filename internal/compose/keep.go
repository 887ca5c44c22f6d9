package compose

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// Create-only fields: bpg replaces the VM or the file when one of them
// changes (ForceNew in its schema), and Upjet refuses to destroy
// (prevent_destroy), so a change would leave the resource failing every
// reconcile. The claim fields behind them are immutable (crossplane/xrd.yaml
// transition rules); these lists cover what changes without a claim edit:
// a Composition default (node, storage, snippet datastore, template), the
// keys in a Secret, a new rendering of the user-data.
var (
	vmCreateOnly = [][]string{
		{"nodeName"}, {"vmId"}, {"clone"}, {"poolId"},
		{"initialization", "0", "userDataFileId"}, {"initialization", "0", "datastoreId"},
		// bpg moves a disk whose datastore changes (shut down, move, start).
		{"disk", "0", "datastoreId"},
	}
	fileCreateOnly = [][]string{
		{"nodeName"}, {"datastoreId"}, {"contentType"}, {"sourceRaw"},
	}
)

// KeepCreateOnly copies the create-only fields of observed (the resource
// as it exists) into desired, so that an existing VM or snippet is never
// asked to change what it cannot. It returns the fields whose desired value
// it overrode, as spec.forProvider paths.
func KeepCreateOnly(desired, observed *unstructured.Unstructured) []string {
	if desired == nil || observed == nil {
		return nil
	}
	want := forProvider(desired)
	if want == nil {
		return nil
	}
	return KeepCreateOnlyIn(desired.GetKind(), MapForProvider(want), observed)
}

// KeepCreateOnlyIn is KeepCreateOnly for a desired resource of kind whose
// spec.forProvider is want.
func KeepCreateOnlyIn(kind string, want ForProvider, observed *unstructured.Unstructured) []string {
	if observed == nil {
		return nil
	}
	fields := vmCreateOnly
	if kind == FileKind {
		fields = fileCreateOnly
	} else if _, ok, _ := unstructured.NestedString(observed.Object, "spec", "forProvider", "poolId"); !ok {
		// A VM made before VMs had a pool stays out of it: moving it needs
		// Pool.Allocate, which the token does not have (README, upgrade).
		want.Delete("poolId")
	}
	return keep(want, observed, fields)
}

// KeepDefaults copies into the desired VM, from the one that exists, the
// fields a Composition default sets where the claim s leaves them unset:
// the CPU type (no claim field), the bridge, the DNS domain (and the FQDN
// in the description) and the nameservers. Each would reach every existing machine when the default is
// edited (bpg reboots a VM for a new CPU type or cloud-init DNS, and moves a
// NIC to a new bridge), so defaults apply to machines created after the
// edit; a claim that sets the value changes its machine. So does the image
// entry's SCSI controller, which no claim field sets (bpg reboots a VM for a
// new one). The entry's boot disk interface is not kept here: a VM whose
// clone failed on a wrong one must take the corrected entry, and our
// provider refuses to boot an existing VM from another disk
// (provider/config/diff.go). It returns the fields it kept.
func KeepDefaults(desired, observed *unstructured.Unstructured, s *machine.Spec) []string {
	if desired == nil || observed == nil {
		return nil
	}
	want := forProvider(desired)
	if want == nil {
		return nil
	}
	return KeepDefaultsIn(MapForProvider(want), observed, s)
}

// KeepDefaultsIn is KeepDefaults for a desired VM whose spec.forProvider is
// want.
func KeepDefaultsIn(want ForProvider, observed *unstructured.Unstructured, s *machine.Spec) []string {
	if observed == nil {
		return nil
	}
	fields := [][]string{defaultCPUType, defaultSCSI}
	if s.Proxmox.Bridge == "" {
		fields = append(fields, defaultBridge)
	}
	if s.Domain == "" {
		fields = append(fields, defaultDomain...)
	}
	if len(s.Network.DNS) == 0 {
		fields = append(fields, defaultDNS)
	}
	return keep(want, observed, fields)
}

// The fields KeepDefaults keeps: the CPU type and SCSI controller always
// (no claim field sets them), the others where the claim leaves them to
// the defaults.
var (
	defaultCPUType = []string{"cpu", "0", "type"}
	defaultSCSI    = []string{"scsiHardware"}
	defaultBridge  = []string{"networkDevice", "0", "bridge"}
	// The description names the FQDN, which the VM got from its user-data
	// at first boot and keeps.
	defaultDomain = [][]string{{"initialization", "0", "dns", "0", "domain"}, {"description"}}
	defaultDNS    = []string{"initialization", "0", "dns", "0", "servers"}
)

// KeptPaths are all the spec.forProvider paths KeepCreateOnly and
// KeepDefaults read of an observed resource: a decoder of the observed
// resource may leave out everything else of its forProvider.
func KeptPaths() [][]string {
	var out [][]string
	out = append(out, vmCreateOnly...)
	out = append(out, fileCreateOnly...)
	out = append(out, defaultCPUType, defaultSCSI, defaultBridge, defaultDNS)
	return append(out, defaultDomain...)
}

// ForProvider is a desired resource's spec.forProvider as the Keep
// functions read and change it: a map (MapForProvider), or the same object
// in another form (the function builds its protobuf Structs directly), which
// must read and change it as the map does.
type ForProvider interface {
	// Get reads a path of map keys and list indexes ("0"), as get does.
	Get(path []string) (any, bool)
	// Set sets a path to a copy of v, a value of the observed resource, as
	// set does.
	Set(path []string, v any)
	// Delete removes a top-level field.
	Delete(field string)
}

// MapForProvider is a spec.forProvider map as a ForProvider.
type MapForProvider map[string]any

// Get is get on the map.
func (m MapForProvider) Get(path []string) (any, bool) { return get(map[string]any(m), path) }

// Set is set on the map, with a deep copy of v.
func (m MapForProvider) Set(path []string, v any) { set(m, path, runtime.DeepCopyJSONValue(v)) }

// Delete deletes the field.
func (m MapForProvider) Delete(field string) { delete(m, field) }

// keep copies fields of observed's spec.forProvider into want where they
// differ, and returns them. It changes want in place (the composer made it
// for this call, nothing else holds it) and copies only the values it takes
// from observed: deep-copying both forProviders and comparing through JSON
// was the largest part of the function's own CPU.
func keep(want ForProvider, observed *unstructured.Unstructured, fields [][]string) []string {
	have := forProvider(observed)
	if have == nil {
		return nil
	}
	var kept []string
	for _, path := range fields {
		hv, ok := get(have, path)
		if !ok {
			continue
		}
		wv, _ := want.Get(path)
		if same(wv, hv) {
			continue
		}
		want.Set(path, hv)
		kept = append(kept, "spec.forProvider."+strings.Join(path, "."))
	}
	return kept
}

// forProvider is u's spec.forProvider, not copied (nil when it is not an
// object).
func forProvider(u *unstructured.Unstructured) map[string]any {
	v, _, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "forProvider")
	m, _ := v.(map[string]any)
	return m
}

// get reads a path of map keys and list indexes ("0").
func get(v any, path []string) (any, bool) {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[p]; !ok {
				return nil, false
			}
		case []any:
			if p != "0" || len(x) == 0 {
				return nil, false
			}
			v = x[0]
		default:
			return nil, false
		}
	}
	return v, true
}

func set(root map[string]any, path []string, val any) {
	var cur any = root
	for i, p := range path {
		last := i == len(path)-1
		switch x := cur.(type) {
		case map[string]any:
			if last {
				x[p] = val
				return
			}
			next, ok := x[p]
			if !ok {
				next = map[string]any{}
				if path[i+1] == "0" {
					next = []any{map[string]any{}}
				}
				x[p] = next
			}
			cur = next
		case []any:
			if len(x) == 0 {
				return
			}
			if last {
				x[0] = val
				return
			}
			cur = x[0]
		}
	}
}

// same compares two JSON-like values, numbers by value whatever their Go
// type (the cluster gives int64 or float64, the composer int64), as their
// JSON forms compare. It walks the values the composer and the cluster give
// (plainJSON); anything else (another Go type, a NaN, invalid UTF-8) goes
// through encoding/json as before.
func same(a, b any) bool {
	if plainJSON(a) && plainJSON(b) {
		return sameWalk(a, b)
	}
	return sameJSON(a, b)
}

// sameJSON compares the values as encoding/json reads back their JSON.
func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		return reflect.DeepEqual(a, b)
	}
	var na, nb any
	_ = json.Unmarshal(ja, &na)
	_ = json.Unmarshal(jb, &nb)
	return reflect.DeepEqual(na, nb)
}

// sameWalk is sameJSON for two plainJSON values.
func sameWalk(a, b any) bool {
	ka, _ := jsonKind(a)
	kb, _ := jsonKind(b)
	if ka != kb {
		return false
	}
	switch ka {
	case kindNull:
		return true
	case kindBool:
		return a.(bool) == b.(bool)
	case kindString:
		return a.(string) == b.(string)
	case kindNumber:
		return number(a) == number(b)
	case kindList:
		x, y := a.([]any), b.([]any)
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameWalk(x[i], y[i]) {
				return false
			}
		}
		return true
	default:
		x, y := a.(map[string]any), b.(map[string]any)
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameWalk(v, w) {
				return false
			}
		}
		return true
	}
}

type jsonKindOf int

const (
	kindNull jsonKindOf = iota
	kindBool
	kindString
	kindNumber
	kindList
	kindObject
)

// jsonKind is the JSON type v encodes to (a nil list or object encodes as
// null); ok is false for a value plainJSON refuses.
func jsonKind(v any) (jsonKindOf, bool) {
	switch x := v.(type) {
	case nil:
		return kindNull, true
	case bool:
		return kindBool, true
	case string:
		return kindString, utf8.ValidString(x)
	case int64:
		return kindNumber, true
	case float64:
		return kindNumber, !math.IsNaN(x) && !math.IsInf(x, 0)
	case []any:
		if x == nil {
			return kindNull, true
		}
		return kindList, true
	case map[string]any:
		if x == nil {
			return kindNull, true
		}
		return kindObject, true
	}
	return 0, false
}

// plainJSON reports whether v holds only values whose JSON form sameWalk
// knows: nil, bool, valid UTF-8 strings, int64, finite float64, []any and
// map[string]any.
func plainJSON(v any) bool {
	k, ok := jsonKind(v)
	if !ok {
		return false
	}
	switch k {
	case kindList:
		for _, e := range v.([]any) {
			if !plainJSON(e) {
				return false
			}
		}
	case kindObject:
		for key, e := range v.(map[string]any) {
			if !utf8.ValidString(key) || !plainJSON(e) {
				return false
			}
		}
	}
	return true
}

// number is a JSON number's value as encoding/json reads it back: a
// float64 (an int64 beyond 2^53 rounds as its decimal form does).
func number(v any) float64 {
	if i, ok := v.(int64); ok {
		return float64(i)
	}
	return v.(float64)
}
