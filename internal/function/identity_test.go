package function

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/repo"
)

// lease is an identity object as Crossplane finds it by name: controlled by
// the XR with uid (none when ""), naming holder.
func lease(name, uid, holder string) map[string]any {
	meta := map[string]any{"name": name, "namespace": compose.IdentityNamespace}
	if uid != "" {
		meta["ownerReferences"] = []any{map[string]any{
			"apiVersion": "homelab.dev/v1alpha1", "kind": "XMachine", "name": strings.TrimPrefix(uid, "uid-"), "uid": uid, "controller": true,
		}}
	}
	spec := map[string]any{}
	if holder != "" {
		spec["holderIdentity"] = holder
	}
	return map[string]any{"apiVersion": compose.IdentityAPIVersion, "kind": compose.IdentityKind, "metadata": meta, "spec": spec}
}

func desiredNames(rsp *fnv1.RunFunctionResponse) []string {
	var out []string
	for n := range rsp.GetDesired().GetResources() {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// TestIdentities: the function asks for the machine's identity objects by
// name; one controlled by another XR refuses the claim naming its holder;
// the snippet and VM are composed only once Crossplane observes every
// identity as this XR's.
func TestIdentities(t *testing.T) {
	ids := []string{"machine-hostname-dns01", "machine-ip-10.0.10.53", "machine-vmid-1053"}
	cases := map[string]struct {
		reason    string
		observed  map[string]map[string]any // besides nothing: no identity held
		found     map[string][]map[string]any
		wantFatal []string
		want      []string // desired resources
	}{
		"Free": {
			reason: "nobody holds them: compose the identities, nothing else yet",
			want:   ids,
		},
		"VMIDHeld": {
			reason:    "another claim holds the VM id: refused, naming it",
			found:     map[string][]map[string]any{"identity-vmid": {lease("machine-vmid-1053", "uid-x", "Machine team/x")}},
			wantFatal: []string{"spec.proxmox.vmId: 1053 is already the VM id of Machine team/x; two claims on one id would manage one VM. Pick a free id"},
		},
		"HostnameAndIPHeld": {
			reason: "each held identity is named with its holder",
			found: map[string][]map[string]any{
				"identity-hostname": {lease("machine-hostname-dns01", "uid-x", "Machine team/x")},
				"identity-ip":       {lease("machine-ip-10.0.10.53", "uid-y", "Machine lab/y")},
			},
			wantFatal: []string{"spec.hostname: dns01 is already the host name of Machine team/x", "spec.network.ip: 10.0.10.53 is already the address of Machine lab/y"},
		},
		"HolderUnnamed": {
			reason:    "an object without a holder names its controller",
			found:     map[string][]map[string]any{"identity-vmid": {lease("machine-vmid-1053", "uid-other", "")}},
			wantFatal: []string{"spec.proxmox.vmId: 1053 is already the VM id of XMachine other"},
		},
		"OwnObject": {
			reason: "this XR's own object is no conflict",
			found:  map[string][]map[string]any{"identity-vmid": {lease("machine-vmid-1053", "uid-dns01", "Machine infra-machines/dns01")}},
			want:   ids,
		},
		"Orphan": {
			reason: "an object nobody controls (its XR orphaned it) is free",
			found:  map[string][]map[string]any{"identity-vmid": {lease("machine-vmid-1053", "", "Machine team/gone")}},
			want:   ids,
		},
		"SomeHeld": {
			reason:   "two of three observed: still nothing but the identities",
			observed: map[string]map[string]any{"machine-vmid-1053": lease("machine-vmid-1053", "uid-dns01", ""), "machine-hostname-dns01": lease("machine-hostname-dns01", "uid-dns01", "")},
			want:     ids,
		},
		"AllHeld": {
			reason: "all observed: the snippet follows",
			observed: map[string]map[string]any{
				"machine-vmid-1053": lease("machine-vmid-1053", "uid-dns01", ""), "machine-hostname-dns01": lease("machine-hostname-dns01", "uid-dns01", ""),
				"machine-ip-10.0.10.53": lease("machine-ip-10.0.10.53", "uid-dns01", ""),
			},
			want: append(append([]string{}, ids...), "user-data"),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			claims, _ := exampleClaims(t)
			rsp := runXR(t, repo.XRFor(claims["dns01"]), tc.observed, tc.found)
			got := fatals(rsp)
			for _, w := range tc.wantFatal {
				if !strings.Contains(got, w) {
					t.Errorf("%s: want a Fatal containing %q, got %q", tc.reason, w, got)
				}
			}
			if len(tc.wantFatal) == 0 && got != "" {
				t.Errorf("%s: unexpected Fatal: %s", tc.reason, got)
			}
			if diff := cmp.Diff(tc.want, desiredNames(rsp)); diff != "" {
				t.Errorf("%s: desired resources (-want, +got):\n%s", tc.reason, diff)
			}
			for _, id := range ids {
				r := rsp.GetDesired().GetResources()[id]
				if r == nil {
					continue
				}
				_, observed := tc.observed[id]
				if wantReady := observed; (r.GetReady() == fnv1.Ready_READY_TRUE) != wantReady {
					t.Errorf("%s: %s ready %v, want %v (ready once held)", tc.reason, id, r.GetReady(), wantReady)
				}
			}
		})
	}
}

// TestIdentityRequirements: one requirement per identity, by name in
// Crossplane's namespace, and none for the address of a DHCP machine.
func TestIdentityRequirements(t *testing.T) {
	claims, input := exampleClaims(t)
	for claim, want := range map[string][]string{
		"dns01":    {"identity-hostname=machine-hostname-dns01", "identity-ip=machine-ip-10.0.10.53", "identity-vmid=machine-vmid-1053"},
		"docker01": {"identity-hostname=machine-hostname-docker01", "identity-vmid=machine-vmid-1060"},
	} {
		req, err := NewRequest(repo.XRFor(claims[claim]), input, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		rsp, err := (&Function{}).RunFunction(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for name, sel := range rsp.GetRequirements().GetResources() {
			if !strings.HasPrefix(name, "identity-") {
				continue
			}
			if sel.GetKind() != "Lease" || sel.GetNamespace() != compose.IdentityNamespace || sel.GetMatchName() == "" {
				t.Errorf("%s: %s: want a Lease in %s by name, got %v", claim, name, compose.IdentityNamespace, sel)
			}
			got = append(got, name+"="+sel.GetMatchName())
		}
		sort.Strings(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: requirements (-want, +got):\n%s", claim, diff)
		}
		if n := len(rsp.GetDesired().GetResources()); n != 0 {
			t.Errorf("%s: composed %d resources before its identities were known", claim, n)
		}
	}
}

// TestHoldWhileClaiming: a machine whose VM exists and whose address is
// edited keeps its snippet, its VM and its old address exactly as they are
// until it holds the new address; nothing is dropped (Crossplane would
// delete it) or changed. Once it holds the new one, the old one is let go.
func TestHoldWhileClaiming(t *testing.T) {
	claims, input := exampleClaims(t)
	before := converge(t, claims["dns01"], input)
	obs := Applied(before)
	obs[compose.VM]["status"] = observedVM("x")["status"]
	xr := repo.XRFor(claims["dns01"])
	xr["spec"].(map[string]any)["network"].(map[string]any)["ip"] = "10.0.10.99"

	rsp := runXR(t, xr, obs, nil)
	if f := fatals(rsp); f != "" {
		t.Fatalf("unexpected Fatal: %s", f)
	}
	want := []string{"machine-hostname-dns01", "machine-ip-10.0.10.53", "machine-ip-10.0.10.99", "machine-vmid-1053", "user-data", "vm"}
	if diff := cmp.Diff(want, desiredNames(rsp)); diff != "" {
		t.Errorf("while claiming: desired resources (-want, +got):\n%s", diff)
	}
	for _, name := range []string{compose.UserData, compose.VM} {
		got := rsp.GetDesired().GetResources()[name].GetResource().AsMap()
		was := before.GetDesired().GetResources()[name].GetResource().AsMap()
		if diff := cmp.Diff(was["spec"], got["spec"]); diff != "" {
			t.Errorf("%s changed while the new address is not held (-before, +now):\n%s", name, diff)
		}
	}

	obs = Applied(rsp)
	obs[compose.VM]["status"] = observedVM("x")["status"]
	rsp = runXR(t, xr, obs, nil)
	want = []string{"machine-hostname-dns01", "machine-ip-10.0.10.99", "machine-vmid-1053", "user-data", "vm"}
	if diff := cmp.Diff(want, desiredNames(rsp)); diff != "" {
		t.Errorf("once held: desired resources (-want, +got):\n%s", diff)
	}
	ipc, _, _ := unstructured.NestedSlice(rsp.GetDesired().GetResources()[compose.VM].GetResource().AsMap(), "spec", "forProvider", "initialization")
	if !strings.Contains(fmt.Sprint(ipc), "10.0.10.99") {
		t.Errorf("once held, the VM should get the new address: %v", ipc)
	}
}

// cluster plays the API server's part in uniqueness: an identity object
// has at most one controlling XR (a second controller reference is
// invalid), and Crossplane observes as an XR's only what it controls. It
// answers every requirement as Crossplane would, including one for all
// XMachines (what the function asked for before identities), so a request
// that grew with the fleet would show here.
type cluster struct {
	controller map[string]string // object name -> XR uid
	xrs        []map[string]any
}

func newCluster() *cluster { return &cluster{controller: map[string]string{}} }

// answer is Crossplane's answer to one requirement.
func (c *cluster) answer(t testing.TB, sel *fnv1.ResourceSelector) *fnv1.Resources {
	t.Helper()
	rs := &fnv1.Resources{}
	add := func(o map[string]any) {
		s, err := toStruct(o)
		if err != nil {
			t.Fatal(err)
		}
		rs.Items = append(rs.Items, &fnv1.Resource{Resource: s})
	}
	switch {
	case sel.GetKind() == compose.IdentityKind:
		if owner, ok := c.controller[sel.GetMatchName()]; ok {
			add(lease(sel.GetMatchName(), owner, "Machine team/"+strings.TrimPrefix(owner, "uid-")))
		}
	case sel.GetKind() == "XMachine" && sel.GetMatchLabels() != nil:
		for _, xr := range c.xrs {
			add(xr)
		}
	}
	return rs
}

// reconcile runs the function for xr as Crossplane does: the identity
// objects it requires, found by name; then applies what it desires. It
// returns the request of the last pass and its response.
func (c *cluster) reconcile(t testing.TB, f *Function, xr map[string]any, input []byte, observed map[string]map[string]any) (*fnv1.RunFunctionRequest, *fnv1.RunFunctionResponse) {
	t.Helper()
	uid := xr["metadata"].(map[string]any)["uid"].(string)
	req, err := NewRequest(xr, input, observed, nil)
	if err != nil {
		t.Fatal(err)
	}
	rsp, err := f.RunFunction(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	req.RequiredResources = map[string]*fnv1.Resources{}
	for name, sel := range rsp.GetRequirements().GetResources() {
		req.RequiredResources[name] = c.answer(t, sel)
	}
	if rsp, err = f.RunFunction(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	for name, r := range rsp.GetDesired().GetResources() {
		if !compose.IsIdentity(name) {
			continue
		}
		n := r.GetResource().GetFields()["metadata"].GetStructValue().GetFields()["name"].GetStringValue()
		if _, taken := c.controller[n]; !taken {
			c.controller[n] = uid
		}
	}
	return req, rsp
}

// machineXR is machine i of a fleet: its own VM id, host name and address.
func machineXR(t testing.TB, base map[string]any, i int) map[string]any {
	t.Helper()
	b, err := json.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	var xr map[string]any
	if err := json.Unmarshal(b, &xr); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("m%05d", i)
	meta := xr["metadata"].(map[string]any)
	meta["name"], meta["uid"] = name, "uid-"+name
	spec := xr["spec"].(map[string]any)
	spec["hostname"] = name
	spec["claimRef"] = map[string]any{"namespace": "team", "name": name}
	spec["proxmox"].(map[string]any)["vmId"] = 10000 + i
	spec["network"] = map[string]any{"ip": fmt.Sprintf("10.%d.%d.%d", 100+i/62500, 100+i/250%250, 1+i%250), "cidr": "10.0.0.0/8", "gateway": "10.0.0.1"}
	return xr
}

// TestUniquenessCostIsFlat composes a fleet of 2,000 machines in-process,
// each to its VM, then a 2,001st whose host name is the first's. A
// machine's request (what Crossplane sends, what the function reads) is the
// same size in a fleet of 2,000 as alone: it carries its own identities,
// never the other machines. The duplicate is refused naming the holder.
func TestUniquenessCostIsFlat(t *testing.T) {
	claims, input := exampleClaims(t)
	base := repo.XRFor(claims["dns01"])
	f := &Function{}
	fleet := 2000
	if testing.Short() {
		fleet = 300
	}
	// converge reconciles machine i until its VM is composed; it returns
	// the size of its last request and how many objects it carried.
	converge := func(c *cluster, i int) (int, int) {
		xr := machineXR(t, base, i)
		var obs map[string]map[string]any
		for pass := 0; pass < 4; pass++ {
			req, rsp := c.reconcile(t, f, xr, input, obs)
			if ft := fatals(rsp); ft != "" {
				t.Fatalf("machine %d: unexpected Fatal: %s", i, ft)
			}
			if Composed(rsp) {
				c.xrs = append(c.xrs, xr)
				n := 0
				for _, rs := range req.GetRequiredResources() {
					n += len(rs.GetItems())
				}
				return proto.Size(req), n
			}
			obs = Applied(rsp)
		}
		t.Fatalf("machine %d: no VM after four reconciles", i)
		return 0, 0
	}
	alone := newCluster()
	aloneSize, aloneReqs := converge(alone, fleet-1)

	c := newCluster()
	var size, reqs int
	for i := 0; i < fleet; i++ {
		size, reqs = converge(c, i)
	}
	if size != aloneSize || reqs != aloneReqs {
		t.Errorf("machine %d's request: %d bytes and %d objects in a fleet of %d, %d bytes and %d alone; want the same",
			fleet-1, size, reqs, fleet, aloneSize, aloneReqs)
	}
	if want := 3; reqs != want {
		t.Errorf("want %d required objects (its VM id, host name and address, held), got %d", want, reqs)
	}
	if got := len(c.controller); got != 3*fleet {
		t.Errorf("want %d identity objects, one per machine and identity, got %d", 3*fleet, got)
	}

	dup := machineXR(t, base, fleet)
	dup["spec"].(map[string]any)["hostname"] = "m00000"
	_, rsp := c.reconcile(t, f, dup, input, nil)
	if got, want := fatals(rsp), "spec.hostname: m00000 is already the host name of Machine team/m00000"; !strings.Contains(got, want) {
		t.Errorf("the duplicate: want a Fatal containing %q, got %q", want, got)
	}
	if n := len(rsp.GetDesired().GetResources()); n != 0 {
		t.Errorf("the duplicate composed %d resources", n)
	}
}

// TestIdentityRace: two machines ask for the same host name before either
// holds it. Both compose the object; the API server lets one control it;
// only that one is observed holding it and gets a snippet, the other is
// refused naming it on its next reconcile.
func TestIdentityRace(t *testing.T) {
	claims, input := exampleClaims(t)
	base := repo.XRFor(claims["dns01"])
	a, b := machineXR(t, base, 1), machineXR(t, base, 2)
	b["spec"].(map[string]any)["hostname"] = "m00001"
	f := &Function{}
	c := newCluster()
	// Both read before either applies: b's pass sees an empty cluster.
	empty := newCluster()
	_, rspA := c.reconcile(t, f, a, input, nil)
	_, rspB := empty.reconcile(t, f, b, input, nil)
	if fatals(rspA) != "" || fatals(rspB) != "" {
		t.Fatalf("a first pass refused: %q %q", fatals(rspA), fatals(rspB))
	}
	if owner := c.controller["machine-hostname-m00001"]; owner != "uid-m00001" {
		t.Fatalf("the first apply should control the object, got %q", owner)
	}
	// b's apply of the same object fails (a second controller); its next
	// reconcile finds it held by a.
	_, rspB = c.reconcile(t, f, b, input, nil)
	if got, want := fatals(rspB), "spec.hostname: m00001 is already the host name of Machine team/m00001"; !strings.Contains(got, want) {
		t.Errorf("the race's loser: want a Fatal containing %q, got %q", want, got)
	}
	_, rspA = c.reconcile(t, f, a, input, Applied(rspA))
	if rspA.GetDesired().GetResources()[compose.UserData] == nil {
		t.Errorf("the race's winner got no snippet: %v", desiredNames(rspA))
	}
}

// BenchmarkReconcileInFleet reconciles one composed machine of a fleet of N:
// the function's cost per reconcile, which must not grow with N.
func BenchmarkReconcileInFleet(b *testing.B) {
	claims, input := exampleClaims(b)
	base := repo.XRFor(claims["dns01"])
	for _, n := range []int{1, 2000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			f := &Function{}
			c := newCluster()
			var req *fnv1.RunFunctionRequest
			for i := 0; i < n; i++ {
				xr := machineXR(b, base, i)
				var obs map[string]map[string]any
				for pass := 0; pass < 4; pass++ {
					var rsp *fnv1.RunFunctionResponse
					req, rsp = c.reconcile(b, f, xr, input, obs)
					obs = Applied(rsp)
				}
				c.xrs = append(c.xrs, xr)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := f.RunFunction(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(proto.Size(req)), "request-bytes")
		})
	}
}
