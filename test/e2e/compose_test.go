//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/test/harness"
)

// TestClaimsCompose applies the example claims and checks that Crossplane,
// calling our function over mTLS, creates their XMachines, EnvironmentVMs and
// EnvironmentFiles; that the apiserver stored them under the provider's real
// CRDs (so their schemas accepted them, server-side); and that they are
// exactly what the function's golden files pin.
func TestClaimsCompose(t *testing.T) {
	cp := stack(t)
	// crossplane/claims is applied as it is, namespace and all, the way a
	// GitOps controller applies it; the golden files are for these claims.
	ns := "infra-machines"
	dir := filepath.Join(testenv.RepoRoot(t), "crossplane", "claims")
	for _, f := range []string{"namespace.yaml", "dns01.yaml", "docker01.yaml"} {
		if _, err := cp.ApplyFile(ctxFor(t), filepath.Join(dir, f)); err != nil {
			t.Fatalf("cannot apply crossplane/claims/%s: %v", f, err)
		}
	}
	t.Cleanup(func() {
		nsObj := &corev1.Namespace{}
		nsObj.SetName(ns)
		_ = cp.Client.Delete(context.Background(), nsObj)
	})
	for _, name := range []string{"dns01", "docker01"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			vm, file, took := waitComposed(t, cp, ns, name)
			t.Logf("claim %s composed in %s", name, took.Round(time.Millisecond))
			xr := xrOf(t, cp, ns, name)

			want := goldenDesired(t, name)
			got := map[string]*unstructured.Unstructured{compose.VM: vm, compose.UserData: file}
			for rname, w := range want.Resources {
				g := got[rname]
				if g == nil {
					t.Errorf("the golden file has resource %q, the cluster does not", rname)
					continue
				}
				// The golden files were made for an XR named like the claim.
				if d := diffComposed(w, name, g, xr.GetName()); d != "" {
					t.Errorf("composed resource %q differs from internal/function/testdata/%s.golden.yaml (-want, +got):\n%s", rname, name, d)
				}
				if r := g.GetAnnotations()["crossplane.io/composition-resource-name"]; r != rname {
					t.Errorf("%s %s: composition-resource-name: want %q, got %q", g.GetKind(), g.GetName(), rname, r)
				}
			}
			if len(got) != len(want.Resources) {
				t.Errorf("want %d composed resources as in the golden file, got %d", len(want.Resources), len(got))
			}
		})
	}
}

// TestClaimClassUpdate changes a claim's class and checks that the composed
// VM's cores and memory follow, as the function computes them in-process.
func TestClaimClassUpdate(t *testing.T) {
	cp := stack(t)
	claim, _, _ := composeExample(t, cp, "update", "dns01")
	ns := claim.GetNamespace()

	for _, class := range []string{"large", "medium"} {
		_ = unstructured.SetNestedField(claim.Object, class, "spec", "class")
		want := inProcessDesired(t, claim).Resources[compose.VM]
		wantCPU, _, _ := unstructured.NestedSlice(want.Object, "spec", "forProvider", "cpu")
		wantMem, _, _ := unstructured.NestedSlice(want.Object, "spec", "forProvider", "memory")
		if err := cp.Apply(ctxFor(t), claim); err != nil {
			t.Fatal(err)
		}
		took := waitFor(t, "the VM to take class "+class, func(ctx context.Context) (bool, string, error) {
			vms, err := composedOf(ctx, cp, gvkVM, ns, claim.GetName())
			if err != nil || len(vms) != 1 {
				return false, fmt.Sprintf("%d VMs", len(vms)), err
			}
			cpu, _, _ := unstructured.NestedSlice(vms[0].Object, "spec", "forProvider", "cpu")
			mem, _, _ := unstructured.NestedSlice(vms[0].Object, "spec", "forProvider", "memory")
			d := cmp.Diff(normalize(wantCPU), normalize(cpu)) + cmp.Diff(normalize(wantMem), normalize(mem))
			return d == "", "cpu, memory (-want, +got): " + d, nil
		})
		t.Logf("class %s reached the VM in %s", class, took.Round(time.Millisecond))
	}
}

// TestRefusedUpdateKeepsVM: an update the function refuses (a class the
// Composition does not define) leaves the running VM exactly as it was, and
// the claim says why (Valid=False naming the field); fixing the claim clears
// the condition and the VM takes the new class. Nothing is lost on the way.
func TestRefusedUpdateKeepsVM(t *testing.T) {
	cp := stack(t)
	claim, vm, _ := composeExample(t, cp, "refused", "dns01")
	ns := claim.GetNamespace()
	validIs := func(status, msg string) func(ctx context.Context) (bool, string, error) {
		return claimValid(cp, ns, claim.GetName(), status, msg)
	}
	waitFor(t, "the claim to be Valid=True", validIs("True", ""))

	_ = unstructured.SetNestedField(claim.Object, "huge", "spec", "class")
	if err := cp.Apply(ctxFor(t), claim); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the claim to be Valid=False naming spec.class", validIs("False", "spec.class"))
	// Give Crossplane a moment in which it would have changed the VM.
	time.Sleep(time.Second)
	now := mustGet(t, cp, vm)
	if d := cmp.Diff(vm.Object["spec"], now.Object["spec"]); d != "" {
		t.Errorf("a refused update changed the VM (-before, +after):\n%s", d)
	}

	_ = unstructured.SetNestedField(claim.Object, "medium", "spec", "class")
	want := inProcessDesired(t, claim).Resources[compose.VM]
	wantCPU, _, _ := unstructured.NestedSlice(want.Object, "spec", "forProvider", "cpu")
	if err := cp.Apply(ctxFor(t), claim); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fixed claim to be Valid=True", validIs("True", ""))
	waitFor(t, "the VM to take class medium", func(ctx context.Context) (bool, string, error) {
		got, err := get(ctx, cp, gvkVM, "", vm.GetName())
		if err != nil {
			return false, "", err
		}
		cpu, _, _ := unstructured.NestedSlice(got.Object, "spec", "forProvider", "cpu")
		d := cmp.Diff(normalize(wantCPU), normalize(cpu))
		return d == "", "cpu (-want, +got): " + d, nil
	})
}

// TestClaimDelete deletes a claim and checks that its XR and every composed
// resource are garbage-collected.
func TestClaimDelete(t *testing.T) {
	cp := stack(t)
	claim, vm, file := composeExample(t, cp, "delete", "docker01")
	ns := claim.GetNamespace()
	xr := xrOf(t, cp, ns, claim.GetName())

	if err := cp.Client.Delete(ctxFor(t), claim); err != nil {
		t.Fatalf("cannot delete claim: %v", err)
	}
	took := waitFor(t, "the claim's XR, VM and snippet to be deleted", func(ctx context.Context) (bool, string, error) {
		left := ""
		for _, o := range []*unstructured.Unstructured{claim, xr, vm, file} {
			_, err := get(ctx, cp, o.GroupVersionKind(), o.GetNamespace(), o.GetName())
			if err == nil {
				left += " " + o.GetKind() + "/" + o.GetName()
				continue
			}
			if client.IgnoreNotFound(err) != nil {
				return false, "", err
			}
		}
		return left == "", "still there:" + left, nil
	})
	t.Logf("claim, XR and composed resources gone %s after the delete", took.Round(time.Millisecond))
}

// TestProviderStatusFlowsBack plays the provider: it writes the status a
// running VM gets (the guest agent's IPv4 addresses, the VM id, Ready) and
// checks that the claim shows them, in its status and in its printer
// columns, and becomes Ready.
func TestProviderStatusFlowsBack(t *testing.T) {
	cp := stack(t)
	claim, vm, file := composeExample(t, cp, "status", "dns01")
	ns := claim.GetNamespace()
	if harness.ConditionStatus(mustGet(t, cp, claim), "Ready") == "True" {
		t.Fatalf("claim is Ready before the provider reported anything")
	}

	now := metav1.Now().UTC().Format(time.RFC3339)
	ready := []any{
		map[string]any{"type": "Ready", "status": "True", "reason": "Available", "lastTransitionTime": now},
		map[string]any{"type": "Synced", "status": "True", "reason": "ReconcileSuccess", "lastTransitionTime": now},
	}
	// What the guest agent of a running dns01 reports, loopback first.
	patchStatus(t, cp, vm, map[string]any{
		"atProvider": map[string]any{
			"vmId":          int64(1053),
			"ipv4Addresses": []any{[]any{"127.0.0.1"}, []any{"10.0.10.53"}},
		},
		"conditions": ready,
	})
	patchStatus(t, cp, file, map[string]any{"conditions": ready})

	// The function's golden file for this very observation.
	want := goldenDesired(t, "dns01-observed").XRStatus
	took := waitFor(t, "the claim to show the VM's status and become Ready", func(ctx context.Context) (bool, string, error) {
		c, err := get(ctx, cp, gvkMachine, ns, claim.GetName())
		if err != nil {
			return false, "", err
		}
		st, _, _ := unstructured.NestedMap(c.Object, "status")
		got := map[string]any{}
		for k := range want {
			if v, ok := st[k]; ok {
				got[k] = v
			}
		}
		d := cmp.Diff(normalize(want), normalize(got))
		if d != "" {
			return false, "status (-want, +got): " + d, nil
		}
		if harness.ConditionStatus(c, "Ready") != "True" {
			return false, "not Ready: " + conditionsString(c), nil
		}
		return true, "", nil
	})
	t.Logf("status reached the claim in %s", took.Round(time.Millisecond))

	// kubectl get machines -o wide prints these columns; the apiserver
	// computes them from the XRD's additionalPrinterColumns.
	cols := printerColumns(t, cp, ns, claim.GetName())
	for col, wantV := range map[string]string{"IP": "10.0.10.53", "VMID": "1053", "READY": "True", "HOSTNAME": "dns01"} {
		if got, ok := cols[col]; !ok || got != wantV {
			t.Errorf("printer column %s: want %q, got %q (all columns: %v)", col, wantV, got, cols)
		}
	}
}

func mustGet(t testing.TB, cp *harness.ControlPlane, o *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	u, err := get(ctxFor(t), cp, o.GroupVersionKind(), o.GetNamespace(), o.GetName())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// patchStatus writes o's status subresource, as the provider does.
func patchStatus(t testing.TB, cp *harness.ControlPlane, o *unstructured.Unstructured, status map[string]any) {
	t.Helper()
	p := newObject(o.GroupVersionKind())
	p.SetName(o.GetName())
	p.SetNamespace(o.GetNamespace())
	p.Object["status"] = status
	if err := cp.Client.Status().Patch(ctxFor(t), p, client.Merge); err != nil {
		t.Fatalf("cannot patch the status of %s %s: %v", o.GetKind(), o.GetName(), err)
	}
}

// printerColumns asks the apiserver for a claim as a Table, the way kubectl
// get does, and returns each column's cell as text.
func printerColumns(t testing.TB, cp *harness.ControlPlane, ns, name string) map[string]string {
	t.Helper()
	hc, err := rest.HTTPClientFor(cp.REST)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("%s/apis/%s/%s/namespaces/%s/machines/%s", cp.REST.Host, gvkMachine.Group, gvkMachine.Version, ns, name)
	req, err := http.NewRequestWithContext(ctxFor(t), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	rsp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("cannot get the claim as a table: %v", err)
	}
	defer rsp.Body.Close()
	body, _ := io.ReadAll(rsp.Body)
	if rsp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s as Table: %s: %s", url, rsp.Status, body)
	}
	var tbl metav1.Table
	if err := json.Unmarshal(body, &tbl); err != nil {
		t.Fatalf("cannot decode the table: %v", err)
	}
	if len(tbl.Rows) != 1 {
		t.Fatalf("want one row, got %d", len(tbl.Rows))
	}
	cols := map[string]string{}
	for i, c := range tbl.ColumnDefinitions {
		if i < len(tbl.Rows[0].Cells) {
			cols[c.Name] = fmt.Sprint(tbl.Rows[0].Cells[i])
		}
	}
	return cols
}
