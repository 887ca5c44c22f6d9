package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/function"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/runningstate"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// fleet plays the API server and the provider for the benchmarks: it
// answers the function's requirements as Crossplane would (an identity
// Lease by name, held by at most one XR; a machine's running-state
// ConfigMap; and every XMachine for a label selector, so that a function
// that asked for the fleet again would show it at N = 1,000), and reports
// what the function composed as the provider would once it is made.
type fleet struct {
	input      []byte
	mu         sync.Mutex
	controller map[string]string // identity object name -> XR uid
	xrs        []map[string]any
}

func newFleet(input []byte) *fleet {
	return &fleet{input: input, controller: map[string]string{}}
}

// hold records that xr holds its identities and exists, as a machine of
// the fleet that has converged.
func (f *fleet) hold(tb testing.TB, xr map[string]any) {
	tb.Helper()
	spec, err := function.SpecOf(xr)
	if err != nil {
		tb.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range compose.Identities(spec) {
		f.controller[id.Name] = uidOf(xr)
	}
	f.xrs = append(f.xrs, xr)
}

func (f *fleet) answer(sel *fnv1.ResourceSelector) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case sel.GetKind() == compose.IdentityKind:
		uid, ok := f.controller[sel.GetMatchName()]
		if !ok {
			return nil
		}
		return []map[string]any{benchLease(sel.GetMatchName(), uid)}
	case sel.GetKind() == "ConfigMap":
		host := strings.TrimPrefix(sel.GetMatchName(), runningstate.Name(""))
		st := runningstate.State{Host: host, Desired: strings.Repeat("ab", 20), Running: strings.Repeat("ab", 20), Verdict: "converged"}
		st.Judge()
		data := map[string]any{}
		for k, v := range st.Data(time.Now()) {
			data[k] = v
		}
		return []map[string]any{{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": sel.GetMatchName(), "namespace": sel.GetNamespace(),
				"labels": map[string]any{runningstate.Label: "true"}, "resourceVersion": "4711", "uid": "cm-" + host},
			"data": data,
		}}
	case sel.GetMatchLabels() != nil:
		return append([]map[string]any(nil), f.xrs...)
	}
	return nil
}

// benchLease is an identity Lease as the API server returns it: controlled
// by the XR with uid, with the metadata Crossplane's apply leaves.
func benchLease(name, uid string) map[string]any {
	return map[string]any{
		"apiVersion": compose.IdentityAPIVersion, "kind": compose.IdentityKind,
		"metadata": map[string]any{
			"name": name, "namespace": compose.IdentityNamespace, "uid": "lease-" + name, "resourceVersion": "1234",
			"creationTimestamp": "2026-12-01T00:00:00Z",
			"annotations":       map[string]any{"crossplane.io/composition-resource-name": name},
			"labels":            map[string]any{"crossplane.io/composite": strings.TrimPrefix(uid, "uid-")},
			"ownerReferences": []any{map[string]any{"apiVersion": "homelab.dev/v1alpha1", "kind": "XMachine",
				"name": strings.TrimPrefix(uid, "uid-"), "uid": uid, "controller": true, "blockOwnerDeletion": true}},
		},
		"spec": map[string]any{"holderIdentity": "Machine team/" + strings.TrimPrefix(uid, "uid-")},
	}
}

func uidOf(xr map[string]any) string {
	uid, _ := xr["metadata"].(map[string]any)["uid"].(string)
	return uid
}

// benchMachine is one machine's XR and what exists of it.
type benchMachine struct {
	xr       map[string]any
	observed map[string]map[string]any
}

// reconcile is one reconcile of m as Crossplane runs it: a call, the
// resources it requires fetched, a second call with them. Then what the
// second call desires is applied: its identities held, the XR's status
// written, every resource made by the provider. It returns both requests
// and the last response.
func (f *fleet) reconcile(ctx context.Context, call func(context.Context, *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error), m *benchMachine) ([2]*fnv1.RunFunctionRequest, *fnv1.RunFunctionResponse, error) {
	var reqs [2]*fnv1.RunFunctionRequest
	req, err := function.NewRequest(m.xr, f.input, m.observed, nil)
	if err != nil {
		return reqs, nil, err
	}
	reqs[0] = req
	rsp, err := call(ctx, req)
	if err != nil {
		return reqs, nil, err
	}
	required := map[string][]map[string]any{}
	for name, sel := range rsp.GetRequirements().GetResources() {
		required[name] = f.answer(sel)
	}
	if reqs[1], err = function.NewRequest(m.xr, f.input, m.observed, required); err != nil {
		return reqs, nil, err
	}
	if rsp, err = call(ctx, reqs[1]); err != nil {
		return reqs, nil, err
	}
	for _, r := range rsp.GetResults() {
		if r.GetSeverity() == fnv1.Severity_SEVERITY_FATAL {
			return reqs, nil, fmt.Errorf("%s: Fatal: %s", m.xr["metadata"].(map[string]any)["name"], r.GetMessage())
		}
	}
	f.mu.Lock()
	for name, r := range rsp.GetDesired().GetResources() {
		if !compose.IsIdentity(name) {
			continue
		}
		n := r.GetResource().GetFields()["metadata"].GetStructValue().GetFields()["name"].GetStringValue()
		if _, taken := f.controller[n]; !taken {
			f.controller[n] = uidOf(m.xr)
		}
	}
	f.mu.Unlock()
	m.observed = provided(rsp)
	m.xr = withStatus(m.xr, rsp)
	return reqs, rsp, nil
}

// provided is what Crossplane observes once the provider has made what rsp
// desires (function.Applied), with a made VM and snippet reported as our
// provider reports them: status.atProvider repeats every argument and adds
// what Proxmox says (the VM's id, node, addresses and interfaces), so the
// function is sent far more than it reads.
func provided(rsp *fnv1.RunFunctionResponse) map[string]map[string]any {
	obs := function.Applied(rsp)
	for _, name := range []string{compose.UserData, compose.VM} {
		o := obs[name]
		if o == nil {
			continue
		}
		spec, _ := o["spec"].(map[string]any)
		fp, _ := spec["forProvider"].(map[string]any)
		at := deepCopy(fp)
		meta, _ := o["metadata"].(map[string]any)
		meta["uid"], meta["resourceVersion"], meta["generation"] = "uid-"+fmt.Sprint(meta["name"]), "98765", 3
		meta["creationTimestamp"], meta["finalizers"] = "2026-12-01T00:00:00Z", []any{"finalizer.managedresource.crossplane.io"}
		spec["initProvider"] = map[string]any{}
		spec["deletionPolicy"] = "Delete"
		status, _ := o["status"].(map[string]any)
		if name == compose.VM {
			if pols, _ := spec["managementPolicies"].([]any); len(pols) == 1 {
				continue // Observe-only: reported absent (function.Applied)
			}
			at["id"] = fmt.Sprint(fp["vmId"])
			at["ipv4Addresses"] = []any{[]any{"127.0.0.1"}, []any{"10.0.10.53"}}
			at["ipv6Addresses"] = []any{[]any{"::1"}, []any{"fe80::be24:11ff:fe3a:1b2c"}}
			at["macAddresses"] = []any{"00:00:00:00:00:00", "BC:24:11:3A:1B:2C"}
			at["networkInterfaceNames"] = []any{"lo", "ens18"}
		} else {
			at["id"] = meta["annotations"].(map[string]any)[compose.AnnotationExternalName]
		}
		status["atProvider"] = at
		for _, c := range status["conditions"].([]any) {
			c.(map[string]any)["lastTransitionTime"] = "2026-12-01T00:05:00Z"
		}
	}
	return obs
}

// withStatus is xr as Crossplane writes it back after a reconcile: the
// status the function desired, its conditions, and the references Crossplane
// keeps in spec and metadata.
func withStatus(xr map[string]any, rsp *fnv1.RunFunctionResponse) map[string]any {
	out := deepCopy(xr)
	st := rsp.GetDesired().GetComposite().GetResource().AsMap()["status"]
	status, _ := st.(map[string]any)
	if status == nil {
		status = map[string]any{}
	}
	var conds []any
	for _, c := range rsp.GetConditions() {
		conds = append(conds, map[string]any{"type": c.GetType(), "status": strings.TrimPrefix(c.GetStatus().String(), "STATUS_CONDITION_"),
			"reason": c.GetReason(), "message": c.GetMessage(), "lastTransitionTime": "2026-12-01T00:05:00Z"})
	}
	status["conditions"] = append(conds,
		map[string]any{"type": "Synced", "status": "True", "reason": "ReconcileSuccess", "lastTransitionTime": "2026-12-01T00:05:00Z"},
		map[string]any{"type": "Ready", "status": "True", "reason": "Available", "lastTransitionTime": "2026-12-01T00:05:00Z"})
	out["status"] = status
	spec := out["spec"].(map[string]any)
	var refs []any
	names := make([]string, 0, len(rsp.GetDesired().GetResources()))
	for n := range rsp.GetDesired().GetResources() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		u := rsp.GetDesired().GetResources()[n].GetResource().AsMap()
		refs = append(refs, map[string]any{"apiVersion": u["apiVersion"], "kind": u["kind"], "name": u["metadata"].(map[string]any)["name"]})
	}
	spec["resourceRefs"] = refs
	spec["compositionRef"] = map[string]any{"name": "xmachines.homelab.dev"}
	spec["compositionRevisionRef"] = map[string]any{"name": "xmachines.homelab.dev-6c4c8f3"}
	spec["compositionUpdatePolicy"] = "Automatic"
	meta := out["metadata"].(map[string]any)
	meta["generation"], meta["resourceVersion"], meta["creationTimestamp"] = 1, "123456", "2026-12-01T00:00:00Z"
	meta["finalizers"] = []any{"composite.apiextensions.crossplane.io"}
	meta["labels"] = map[string]any{"crossplane.io/claim-name": meta["name"], "crossplane.io/claim-namespace": "team", "crossplane.io/composite": meta["name"]}
	return out
}

func deepCopy(m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// benchXR is machine i of a fleet (i < 0: the example claim dns01 itself):
// its own name, VM id, host name and address.
func benchXR(tb testing.TB, i int) map[string]any {
	tb.Helper()
	xr := deepCopy(benchBase(tb))
	name := "dns01"
	spec := xr["spec"].(map[string]any)
	if i >= 0 {
		name = fmt.Sprintf("m%05d", i)
		spec["hostname"] = name
		spec["proxmox"].(map[string]any)["vmId"] = 10000 + i
		spec["network"] = map[string]any{"ip": fmt.Sprintf("10.%d.%d.%d", 100+i/62500, 100+i/250%250, 1+i%250), "cidr": "10.0.0.0/8", "gateway": "10.0.0.1", "dns": []any{"10.0.0.1"}}
		spec["nix"].(map[string]any)["flakeRef"] = "git+https://git.lab.home.arpa/homelab-infra?ref=main#" + name
	}
	spec["claimRef"] = map[string]any{"apiVersion": "homelab.dev/v1alpha1", "kind": "Machine", "namespace": "team", "name": name}
	meta := xr["metadata"].(map[string]any)
	meta["name"], meta["uid"] = name, "uid-"+name
	return xr
}

var (
	benchBaseOnce sync.Once
	benchBaseXR   map[string]any
	benchBaseErr  error
)

// benchBase is the example claim dns01's XR, read once.
func benchBase(tb testing.TB) map[string]any {
	tb.Helper()
	benchBaseOnce.Do(func() {
		claims, err := repo.ReadClaims(filepath.Join(testenv.RepoRoot(tb), repo.ClaimsDir, "dns01.yaml"))
		if err == nil && len(claims) != 1 {
			err = fmt.Errorf("want one claim in dns01.yaml, got %d", len(claims))
		}
		if err != nil {
			benchBaseErr = err
			return
		}
		benchBaseXR = repo.XRFor(claims[0])
	})
	if benchBaseErr != nil {
		tb.Fatal(benchBaseErr)
	}
	return benchBaseXR
}

func benchInput(tb testing.TB) []byte {
	tb.Helper()
	input, err := repo.CompositionInput(filepath.Join(testenv.RepoRoot(tb), repo.CompositionPath))
	if err != nil {
		tb.Fatal(err)
	}
	return input
}

// converge reconciles m until its VM runs (made, Ready, with an address),
// then once more: the requests of that last reconcile are a running
// machine's, the reconcile Crossplane repeats for every machine at every
// poll.
func (f *fleet) converge(tb testing.TB, call func(context.Context, *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error), m *benchMachine) [2]*fnv1.RunFunctionRequest {
	tb.Helper()
	for pass := 0; pass < 8; pass++ {
		reqs, rsp, err := f.reconcile(context.Background(), call, m)
		if err != nil {
			tb.Fatal(err)
		}
		if vm := rsp.GetDesired().GetResources()[compose.VM]; function.Composed(rsp) && vm.GetReady() == fnv1.Ready_READY_TRUE && pass > 0 {
			return reqs
		}
	}
	tb.Fatal("the machine's VM was not running after eight reconciles")
	return [2]*fnv1.RunFunctionRequest{}
}
