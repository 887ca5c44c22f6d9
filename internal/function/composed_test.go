package function

import (
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// TestComposeStructs: the snippet and VM built as Structs (composeStructs)
// are what composing them as maps, keeping what exists in them and
// encoding them gives (composeMaps, the reference), with the same fields
// kept and read back, for machines using every branch of the composer and
// existing resources that differ from them at every field kept, in every
// way; and a machine the direct build cannot make goes the maps' way.
func TestComposeStructs(t *testing.T) {
	base := exampleMachines(t)
	r := rand.New(rand.NewSource(1))
	fast, general := 0, 0
	kept := map[string]int{}
	n := cases(1500)
	for i := 0; i < n; i++ {
		a := randomMachineArgs(r, base)
		var b1, b2 structBuilder
		got, ok := composeStructs(&b1, a)
		want := composeMaps(&b2, a)
		if !ok {
			general++
			if diff := cmp.Diff(want, composeMachine(&b1, a), cmp.AllowUnexported(composed{}), protocmp.Transform(), cmp.Comparer(errorsEqual)); diff != "" {
				t.Fatalf("case %d: composeMachine is not composeMaps when composeStructs cannot (-maps, +composeMachine):\n%s", i, diff)
			}
			continue
		}
		fast++
		for k, n := range map[string]int{"file": len(got.fileKept), "vm": len(got.vmKept), "defaults": len(got.defaultsKept), "moved": len(got.movedTo)} {
			if n > 0 {
				kept[k]++
			}
		}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(composed{}), protocmp.Transform(), cmp.Comparer(errorsEqual)); diff != "" {
			t.Fatalf("case %d (%s): (-composeMaps, +composeStructs):\n%s", i, a.m.Hostname, diff)
		}
	}
	if fast < n*4/5 || general < n/300 {
		t.Errorf("%d cases built directly, %d through maps: the cases do not cover both", fast, general)
	}
	for _, k := range []string{"file", "vm", "defaults", "moved"} {
		if kept[k] < n/15 {
			t.Errorf("only %d cases keep %s fields: %v", kept[k], k, kept)
		}
	}
	t.Logf("%d cases built directly, %d through maps; cases keeping fields: %v", fast, general, kept)
}

// errorsEqual compares encoding errors: which of two strings structpb
// refuses it names first follows map order.
// cases is n, or a third of it with -short (make unit): the differential
// tests draw random cases, and a third still covers each branch (they
// check that they do).
func cases(n int) int {
	if testing.Short() {
		return n / 3
	}
	return n
}

// exampleMachines are the example claims' machines, resolved.
func exampleMachines(t *testing.T) []*machine.Resolved {
	t.Helper()
	claims, input := exampleClaims(t)
	in, err := machine.ParseInput(input)
	if err != nil {
		t.Fatal(err)
	}
	var out []*machine.Resolved
	for _, name := range slices.Sorted(maps.Keys(claims)) { // the same cases every run
		m, err := machine.Resolve(claims[name].Spec, in, []string{"ssh-ed25519 AAAA k"})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, m)
	}
	return out
}

func errorsEqual(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return strings.Contains(a.Error(), "invalid UTF-8") && strings.Contains(b.Error(), "invalid UTF-8")
}

// randomMachineArgs varies an example machine over every branch of the
// composer, and what exists of it: nothing, or the resources of a machine
// like it, as the provider reports them, changed at the fields kept.
func randomMachineArgs(r *rand.Rand, base []*machine.Resolved) machineArgs {
	m := *base[r.Intn(len(base))]
	pick := func(s ...string) string { return s[r.Intn(len(s))] }
	m.Image.Node = pick("", m.Proxmox.Node, "pve9")
	m.CPUType = pick("", "host", "x86-64-v2-AES")
	m.Image.SCSIHardware = pick(m.Image.SCSIHardware, "virtio-scsi-pci")
	m.Proxmox.Bridge = pick(m.Proxmox.Bridge, "vmbr1")
	if r.Intn(2) == 0 {
		m.Proxmox.VLAN = nil
	} else {
		v := int64(r.Intn(4095))
		m.Proxmox.VLAN = &v
	}
	m.Network.DHCP = r.Intn(3) == 0
	m.Domain = pick("", "lab.home.arpa", "example.org")
	m.DNS = [][]string{nil, {"10.0.10.1"}, {"10.0.10.1", "1.1.1.1"}}[r.Intn(3)]
	m.Tags = [][]string{nil, {"core"}, {"core", "dns"}}[r.Intn(3)]
	m.Role = pick("", "dns")
	id := int64(1000 + r.Intn(3))
	m.Proxmox.VMID = &id
	spec := m.Spec
	spec.Proxmox.Bridge = pick("", m.Proxmox.Bridge)
	spec.Domain = pick("", m.Domain)
	spec.Network.DNS = [][]string{nil, m.DNS}[r.Intn(2)]
	userData := pick("#cloud-config\nhostname: a\n", "#cloud-config\nhostname: b\n")
	if r.Intn(100) == 0 {
		userData = "#cloud-config\n\xff\n" // structpb refuses it: the maps' way
	}
	a := machineArgs{
		xrName: "x-" + pick("a", "b"), owner: pick("team/dns01", "x-a"), m: &m, userData: userData,
		diskGiB: int64(8 + r.Intn(3)), spec: &spec, pols: [][]any{compose.ManagementPolicies, compose.ObservePolicies}[r.Intn(2)],
	}
	if r.Intn(5) == 0 {
		return a
	}
	// What exists: another machine like it, as composed, then changed.
	other := randomMachineArgs(r, base)
	other.obs = observed{}
	var b structBuilder
	c := composeMaps(&b, other)
	a.obs.file = existing(r, c.file, false)
	a.obs.vm = existing(r, c.vm, true)
	return a
}

// existing is a composed resource as the provider reports it (nil, or
// without its spec.forProvider at times), changed at the fields the Keep
// functions read.
func existing(r *rand.Rand, s *structpb.Struct, vm bool) *unstructured.Unstructured {
	if s == nil || r.Intn(6) == 0 {
		return nil
	}
	u := &unstructured.Unstructured{Object: s.AsMap()}
	if r.Intn(8) == 0 {
		unstructured.RemoveNestedField(u.Object, "spec", "forProvider")
		return u
	}
	fp, _, _ := unstructured.NestedMap(u.Object, "spec", "forProvider")
	paths := [][]string{{"nodeName"}, {"datastoreId"}, {"contentType"}, {"sourceRaw"}, {"sourceRaw", "0", "data"}}
	if vm {
		paths = [][]string{{"nodeName"}, {"vmId"}, {"clone"}, {"clone", "0", "vmId"}, {"poolId"},
			{"initialization", "0", "userDataFileId"}, {"initialization", "0", "datastoreId"}, {"disk", "0", "datastoreId"},
			{"cpu", "0", "type"}, {"scsiHardware"}, {"networkDevice", "0", "bridge"}, {"initialization", "0", "dns"},
			{"initialization", "0", "dns", "0", "domain"}, {"initialization", "0", "dns", "0", "servers"}, {"description"}}
	}
	for n := r.Intn(4); n > 0; n-- {
		path := paths[r.Intn(len(paths))]
		switch r.Intn(3) {
		case 0:
			v := randomJSON(r, 2)
			if r.Intn(40) == 0 {
				v = "\xfe" // structpb refuses it: the maps' way
			}
			compose.MapForProvider(fp).Set(path, v)
		case 1:
			delete(fp, path[0])
		default:
			compose.MapForProvider(fp).Set(path, "pve"+fmt.Sprint(r.Intn(3)))
		}
	}
	if l, ok := fp["sourceRaw"].([]any); ok && len(l) > 0 {
		// The provider's schema makes its items objects (composeMaps, as
		// the function did before composeStructs, panics on another).
		if _, ok := l[0].(map[string]any); !ok {
			l[0] = map[string]any{"data": l[0]}
		}
	}
	_ = unstructured.SetNestedMap(u.Object, fp, "spec", "forProvider")
	if vm && r.Intn(3) == 0 {
		_ = unstructured.SetNestedField(u.Object, "pve"+fmt.Sprint(r.Intn(3)), "status", "atProvider", "nodeName")
	}
	return u
}

// randomJSON is a value as a cluster's JSON decodes it.
func randomJSON(r *rand.Rand, depth int) any {
	n := 6
	if depth == 0 {
		n = 4
	}
	switch r.Intn(n) {
	case 0:
		return nil
	case 1:
		return r.Intn(2) == 0
	case 2:
		return []string{"a", "", "local-lvm", "0"}[r.Intn(4)]
	case 3:
		return float64(r.Intn(3)) / float64(1+r.Intn(2))
	case 4:
		l := make([]any, r.Intn(3))
		for i := range l {
			l[i] = randomJSON(r, depth-1)
		}
		return l
	default:
		m := map[string]any{}
		for i := r.Intn(3); i > 0; i-- {
			m[[]string{"a", "0", "vmId"}[r.Intn(3)]] = randomJSON(r, depth-1)
		}
		return m
	}
}

// TestStructForProvider: a Struct as compose.ForProvider reads and changes
// as the map it encodes does (compose.MapForProvider), for paths through
// objects, lists, empty lists, scalars and missing fields.
func TestStructForProvider(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	keys := []string{"a", "0", "vmId"}
	for i := 0; i < cases(10000); i++ {
		tree := map[string]any{}
		for n := r.Intn(4); n > 0; n-- {
			tree[keys[r.Intn(len(keys))]] = randomJSON(r, 3)
		}
		path := make([]string, 1+r.Intn(4))
		for j := range path {
			path[j] = keys[r.Intn(len(keys))]
		}
		var b structBuilder
		st, err := b.newStruct(tree)
		if err != nil {
			t.Fatal(err)
		}
		fp := &structForProvider{b: &b, s: st}
		mp := compose.MapForProvider(runtime.DeepCopyJSON(tree))

		wantV, wantOK := mp.Get(path)
		gotV, gotOK := fp.Get(path)
		if wantOK != gotOK || !cmp.Equal(wantV, gotV) {
			t.Fatalf("Get(%v) of %v: map %v %v, Struct %v %v", path, tree, wantV, wantOK, gotV, gotOK)
		}
		v := randomJSON(r, 2)
		switch r.Intn(4) {
		case 0:
			mp.Delete(path[0])
			fp.Delete(path[0])
		default:
			mp.Set(path, v)
			fp.Set(path, v)
		}
		want, err := structpb.NewStruct(mp)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, fp.s, protocmp.Transform()); diff != "" {
			t.Fatalf("Set(%v, %v) or Delete on %v (-map, +Struct):\n%s", path, v, tree, diff)
		}
	}
}

// TestLeaseStruct: an identity's Lease built as a Struct is the one
// compose.IdentityObject gives, and a holder structpb refuses leaves it
// to IdentityObject's way.
func TestLeaseStruct(t *testing.T) {
	for _, holder := range []string{"Machine team/dns01", "XMachine x", ""} {
		id := compose.Identity{Name: "machine-vmid-1053"}
		want, err := structpb.NewStruct(compose.IdentityObject(id, holder).Object)
		if err != nil {
			t.Fatal(err)
		}
		var b structBuilder
		if diff := cmp.Diff(want, leaseStruct(&b, id, holder), protocmp.Transform()); diff != "" {
			t.Errorf("holder %q (-IdentityObject, +leaseStruct):\n%s", holder, diff)
		}
	}
	var b structBuilder
	if got := leaseStruct(&b, compose.Identity{Name: "machine-vmid-1053"}, "Machine \xff"); got != nil {
		t.Errorf("a holder that is not UTF-8: want no Struct, got %v", got)
	}
}
