package function

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/homelab-infra/homelab-infra/internal/compose"
)

// TestObservedReadsAsWhole: every reader of an observed snippet or VM finds
// in what observedOf decodes what it finds in the whole resource: what the
// Keep functions keep, conditions, readiness, status, disk, ownership,
// failures and migration, for resources as the provider reports them and
// changed in every field read, with values of every kind where they are
// read.
func TestObservedReadsAsWhole(t *testing.T) {
	base := exampleMachines(t)
	r := rand.New(rand.NewSource(3))
	kept := 0
	n := cases(1500)
	for i := 0; i < n; i++ {
		a := randomMachineArgs(r, base)
		var b structBuilder
		c := composeMaps(&b, a)
		for _, res := range []struct {
			s  *structpb.Struct
			vm bool
		}{{c.file, false}, {c.vm, true}} {
			u := existing(r, res.s, res.vm)
			if u == nil {
				continue
			}
			addStatus(r, u.Object)
			s, err := structpb.NewStruct(u.Object)
			if err != nil {
				continue // "\xfe" from existing: no request carries it
			}
			whole := &unstructured.Unstructured{Object: s.AsMap()}
			read := &unstructured.Unstructured{Object: observedOf(s)}
			got, want := readAll(a, read), readAll(a, whole)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("case %d: what the readers find (-whole, +observedOf):\n%s\nresource: %v", i, diff, whole.Object)
			}
			if len(want["kept"].([]any)) > 0 {
				kept++
			}
		}
	}
	if kept < n/5 {
		t.Errorf("only %d resources had fields kept", kept)
	}
}

// readAll is what every reader of an observed resource finds in u, as the
// machine a composes it.
func readAll(a machineArgs, u *unstructured.Unstructured) map[string]any {
	res := compose.Resources(a.xrName, a.owner, a.m, []byte(a.userData), a.diskGiB)
	file, vm := res[0].Object, res[1].Object
	out := map[string]any{}
	o := observed{file: u, vm: u}
	var kept []any
	for _, k := range [][]string{
		compose.KeepCreateOnly(file, u), compose.KeepCreateOnly(vm, u), compose.KeepDefaults(vm, u, a.spec),
		{followNode(vm, u)},
	} {
		kept = append(kept, k)
	}
	out["kept"] = kept
	out["desired"] = []any{runtime.DeepCopyJSON(file.Object), runtime.DeepCopyJSON(vm.Object)}
	for _, typ := range []string{"Ready", "Synced", "LastAsyncOperation"} {
		// Its readers read its status and message.
		c := condition(u, typ)
		out["condition "+typ] = []any{c == nil, c["status"], c["message"]}
	}
	out["ready"] = []any{o.fileReady(), o.vmReady()}
	out["status"] = status(a.m, composed{}, o.vmStatus(), "")
	out["disk"] = []any{o.diskGiB("virtio0"), o.diskGiB("scsi0")}
	pols, foreign := vmOwnership(u, compose.Mark(a.owner), *a.m.Proxmox.VMID)
	out["ownership"] = []any{pols, foreign}
	out["failure"] = vmFailure(u, *a.m.Proxmox.VMID, a.m.Proxmox.Node)
	return out
}

// addStatus gives a resource what the provider reports besides its spec:
// metadata, conditions and status.atProvider, each of every kind at times.
func addStatus(r *rand.Rand, obj map[string]any) {
	pick := func(s ...string) string { return s[r.Intn(len(s))] }
	md, _ := obj["metadata"].(map[string]any)
	if md != nil {
		md["managedFields"] = []any{map[string]any{"manager": "crossplane"}}
		md["uid"] = "u-1"
	}
	var conds []any
	for n := r.Intn(4); n > 0; n-- {
		c := map[string]any{"type": pick("Ready", "Synced", "LastAsyncOperation", "Healthy"), "status": pick("True", "False", "Unknown"),
			"reason": "R", "lastTransitionTime": "2026-01-01T00:00:00Z"}
		switch r.Intn(5) {
		case 0:
			c["message"] = notExist
		case 1:
			c["message"] = fmt.Sprintf("Permission check failed (/vms/%d, VM.Audit)", 1000+r.Intn(3))
		case 2:
			c["message"] = randomJSON(r, 1)
		case 3:
			c["message"] = pick("Cannot allocate memory", "  ", "boom")
		}
		conds = append(conds, c)
	}
	if r.Intn(10) == 0 {
		conds = append(conds, "not a condition")
	}
	at := map[string]any{
		"nodeName":      pick("", "pve0", "pve1", "pve9"),
		"vmId":          float64(1000 + r.Intn(3)),
		"ipv4Addresses": []any{[]any{"127.0.0.1"}, []any{pick("10.0.10.53", "169.254.1.1", "")}},
		"description":   pick("", "dns01.lab.home.arpa: "+compose.Mark("team/dns01")+"; edits here are overwritten", "hand-made"),
		"disk":          []any{map[string]any{"interface": pick("virtio0", "scsi0"), "size": float64(r.Intn(20))}},
		"cpu":           []any{map[string]any{"cores": float64(2)}},
		"network":       randomJSON(r, 2),
	}
	for _, f := range atProviderRead {
		if r.Intn(6) == 0 {
			at[f] = randomJSON(r, 2)
		}
		if r.Intn(8) == 0 {
			delete(at, f)
		}
	}
	status := map[string]any{"conditions": conds, "atProvider": at}
	switch r.Intn(12) {
	case 0:
		status["conditions"] = randomJSON(r, 2)
	case 1:
		status["atProvider"] = randomJSON(r, 2)
	case 2:
		obj["status"] = randomJSON(r, 1)
		return
	}
	obj["status"] = status
	if fp, ok, _ := unstructured.NestedMap(obj, "spec", "forProvider"); ok {
		// More than one NIC, disk, ...: only the first is read.
		for k, v := range fp {
			if l, ok := v.([]any); ok && len(l) > 0 && r.Intn(3) == 0 {
				second := runtime.DeepCopyJSONValue(l[0])
				if m, ok := second.(map[string]any); ok {
					for mk := range m {
						m[mk] = randomJSON(r, 1)
					}
				}
				fp[k] = append(l, second)
			}
		}
		_ = unstructured.SetNestedMap(obj, fp, "spec", "forProvider")
	}
	if spec, ok := obj["spec"].(map[string]any); ok {
		spec["managementPolicies"] = [][]any{{"Observe"}, {"*"}, {"Observe", "Create", "Update", "Delete"}, nil}[r.Intn(4)]
		if r.Intn(10) == 0 {
			spec["managementPolicies"] = randomJSON(r, 1)
		}
	}
}

// TestCompositeReadsAsWhole: what the function reads of the XR (its name,
// uid and claim) is the same in what compositeOf decodes as in the whole
// XR.
func TestCompositeReadsAsWhole(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	for i := 0; i < cases(5000); i++ {
		pick := func(s ...string) string { return s[r.Intn(len(s))] }
		xr := map[string]any{
			"apiVersion": "homelab.dev/v1alpha1", "kind": "XMachine",
			"metadata": map[string]any{"name": pick("dns01-x7k2p", ""), "uid": pick("u-1", ""), "labels": map[string]any{"crossplane.io/claim-name": "dns01"},
				"managedFields": []any{map[string]any{"manager": "crossplane"}}},
			"spec":   map[string]any{"hostname": "dns01", "compositionRef": map[string]any{"name": "machine"}},
			"status": map[string]any{"conditions": []any{}},
		}
		ref := map[string]any{"apiVersion": "homelab.dev/v1alpha1", "kind": "Machine"}
		for _, k := range []string{"name", "namespace"} {
			switch r.Intn(4) {
			case 0:
			case 1:
				ref[k] = randomJSON(r, 1)
			default:
				ref[k] = pick("dns01", "team", "")
			}
		}
		switch r.Intn(8) {
		case 0:
		case 1:
			xr["spec"].(map[string]any)["claimRef"] = randomJSON(r, 2)
		default:
			xr["spec"].(map[string]any)["claimRef"] = ref
		}
		switch r.Intn(10) {
		case 0:
			xr["spec"] = randomJSON(r, 1)
		case 1:
			xr["metadata"] = randomJSON(r, 1)
		}
		s, err := structpb.NewStruct(xr)
		if err != nil {
			t.Fatal(err)
		}
		reads := func(x map[string]any) []any {
			name, _, _ := unstructured.NestedString(x, "metadata", "name")
			uid, _, _ := unstructured.NestedString(x, "metadata", "uid")
			ns, _, _ := unstructured.NestedString(x, "spec", "claimRef", "namespace")
			return []any{name, uid, ns, claimOf(x, name), holderName(x, name), claimNamespace(x)}
		}
		if diff := cmp.Diff(reads(s.AsMap()), reads(compositeOf(s))); diff != "" {
			t.Fatalf("XR %v: what the function reads (-whole, +compositeOf):\n%s", xr, diff)
		}
	}
}
