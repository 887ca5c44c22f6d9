//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/test/harness"
	"github.com/homelab-infra/homelab-infra/test/proxmoxsim"
)

// TestClaimsCompose applies the example claims as a GitOps controller would
// and follows them to running VMs: Crossplane, calling our function over
// mTLS, creates their XMachines, Files and VirtualMachines, stored
// under the provider's real CRDs and exactly what the function's golden
// files pin; the real provider uploads each snippet over SSH and clones
// each VM in the simulator, which boots it from the template's disk, grown
// to the class's size, with the claim's snippet read at start and the
// claim's (or the site's, never the node's) nameservers; the claim becomes
// Ready with its VM id and address. Then two more reconciles of each change
// nothing in Proxmox (no perpetual diff).
func TestClaimsCompose(t *testing.T) {
	t.Parallel()
	cp, n := stackWithNode(t)
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
	cases := map[string]struct {
		vmID    int64
		diskGiB int64
		ip      string
		dns     []string
	}{
		"dns01":    {vmID: 1053, diskGiB: 16, ip: "10.0.10.53", dns: []string{"10.0.10.1"}},
		"docker01": {vmID: 1060, diskGiB: 32, ip: "192.168.1.160", dns: []string{"10.0.10.1"}}, // DHCP; the site's nameservers
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			vm, file, took := waitComposed(t, cp, ns, name)
			t.Logf("claim %s composed in %s", name, took.Round(time.Millisecond))
			xr := xrOf(t, cp, ns, name)

			want := goldenDesired(t, name)
			got := map[string]*unstructured.Unstructured{compose.VM: vm, compose.UserData: file}
			for rname := range want.Resources {
				if compose.IsIdentity(rname) {
					got[rname] = identityLease(t, cp, rname, xr.GetUID())
				}
			}
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

			claim := waitClaimReady(t, cp, ns, name)
			st, _ := n.Sim.VM(int(tc.vmID))
			assertBooted(t, st, tc.diskGiB, snippetData(t, file), tc.dns)
			status, _, _ := unstructured.NestedMap(claim.Object, "status")
			if fmt.Sprint(status["vmId"]) != fmt.Sprint(tc.vmID) || fmt.Sprint(status["ipv4Addresses"]) != "["+tc.ip+"]" {
				t.Errorf("claim status: want vmId %d and ipv4Addresses [%s], got %v", tc.vmID, tc.ip, status)
			}
			// kubectl get machines -o wide prints these columns; the
			// apiserver computes them from the XRD's additionalPrinterColumns.
			cols := printerColumns(t, cp, ns, name)
			for col, wantV := range map[string]string{"IP": tc.ip, "VMID": fmt.Sprint(tc.vmID), "READY": "True", "HOSTNAME": name} {
				if got, ok := cols[col]; !ok || got != wantV {
					t.Errorf("printer column %s: want %q, got %q (all columns: %v)", col, wantV, got, cols)
				}
			}

			// Two more reconciles (the provider's poll) read the VM and
			// change nothing: no late-initialised field, no normalised
			// value makes terraform plan an update.
			writes := n.Sim.ConfigWrites(int(tc.vmID))
			gen := mustGet(t, cp, vm).GetGeneration()
			reads := func() int {
				c := 0
				for _, r := range n.Sim.Requests() {
					if r.Method == "GET" && r.Path == fmt.Sprintf("/api2/json/nodes/pve1/qemu/%d/config", tc.vmID) {
						c++
					}
				}
				return c
			}
			before := reads()
			waitWithin(t, providerTimeout, "two more reconciles of the VM", func(context.Context) (bool, string, error) {
				return reads() >= before+2, fmt.Sprintf("%d config reads since", reads()-before), nil
			})
			if w := n.Sim.ConfigWrites(int(tc.vmID)); w != writes {
				t.Errorf("VM %d: %d writes to Proxmox in reconciles that should change nothing:\n%s", tc.vmID, w-writes, n.Sim.RequestLog(40))
			}
			// Nor before: the create is the only write. bpg's vmCreate ends by
			// starting the VM, and nothing may change it after that (an
			// update right after the create, before the count above began,
			// would be a difference the create left behind).
			if after, started := writesAfterStart(n.Sim.Requests(), tc.vmID); !started {
				t.Errorf("VM %d: the simulator saw no start of it:\n%s", tc.vmID, n.Sim.RequestLog(40))
			} else if len(after) > 0 {
				t.Errorf("VM %d: the provider wrote to it after creating and starting it:\n%s", tc.vmID, strings.Join(after, "\n"))
			}
			// Nor does the spec move: a late-initialized field would be
			// written by the provider and taken out by the next apply.
			if g := mustGet(t, cp, vm).GetGeneration(); g != gen {
				t.Errorf("VirtualMachine %s: its spec changed %d times in reconciles that should change nothing", vm.GetName(), g-gen)
			}
		})
	}
}

// TestRefusedUpdateKeepsVM: an update the function refuses (a class the
// Composition does not define) leaves the running VM exactly as it was, and
// the claim says why (Valid=False naming the field); fixing the claim clears
// the condition and the VM takes the new class. Nothing is lost on the way.
func TestRefusedUpdateKeepsVM(t *testing.T) {
	t.Parallel()
	cp, n := stackWithNode(t)
	claim, id := machineClaim(t, "dns01", newNamespace(t, cp, "refused"))
	if err := cp.Apply(ctxFor(t), claim); err != nil {
		t.Fatal(err)
	}
	ns := claim.GetNamespace()
	validIs := func(status, msg string) func(ctx context.Context) (bool, string, error) {
		return claimValid(cp, ns, claim.GetName(), status, msg)
	}
	waitClaimReady(t, cp, ns, claim.GetName())
	vm, err := composedVM(ctxFor(t), cp, ns, claim.GetName())
	if err != nil || vm == nil {
		t.Fatalf("no VM: %v", err)
	}
	writes := n.Sim.ConfigWrites(int(id))

	setSpec(t, claim, "huge", "class")
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
	if w := n.Sim.ConfigWrites(int(id)); w != writes {
		t.Errorf("a refused update wrote to Proxmox %d times", w-writes)
	}

	setSpec(t, claim, "medium", "class")
	if err := cp.Apply(ctxFor(t), claim); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fixed claim to be Valid=True", validIs("True", ""))
	waitSim(t, n, id, "run with class medium's 2 cores", func(st proxmoxsim.VMState) (bool, string) {
		return st.Boot.Cores == 2 && st.Boot.Booted, fmt.Sprintf("cores %d, booted %v", st.Boot.Cores, st.Boot.Booted)
	})
}

// TestClaimDelete deletes a claim and checks that its XR and every composed
// resource are garbage-collected, and that the provider removed the VM and
// its snippet from Proxmox.
func TestClaimDelete(t *testing.T) {
	t.Parallel()
	cp, n := stackWithNode(t)
	claim, id := machineClaim(t, "docker01", newNamespace(t, cp, "delete"))
	if err := cp.Apply(ctxFor(t), claim); err != nil {
		t.Fatal(err)
	}
	ns := claim.GetNamespace()
	vm, file, _ := waitComposed(t, cp, ns, claim.GetName())
	xr := xrOf(t, cp, ns, claim.GetName())
	waitSim(t, n, id, "boot", func(st proxmoxsim.VMState) (bool, string) { return st.Boot.Booted, st.Status })
	snippet := filepath.Join(n.Sim.SnippetsDir(), fmt.Sprintf("%s-%d-user-data.yaml", claim.GetName(), id))
	if _, err := os.Stat(snippet); err != nil {
		t.Fatalf("the snippet is not on the node: %v", err)
	}

	if err := cp.Client.Delete(ctxFor(t), claim); err != nil {
		t.Fatalf("cannot delete claim: %v", err)
	}
	took := waitWithin(t, providerTimeout, "the claim's XR, VM and snippet to be deleted, in Kubernetes and in Proxmox", func(ctx context.Context) (bool, string, error) {
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
		if _, found := n.Sim.VM(int(id)); found {
			left += fmt.Sprintf(" Proxmox VM %d", id)
		}
		if _, err := os.Stat(snippet); err == nil {
			left += " snippet " + filepath.Base(snippet)
		}
		return left == "", "still there:" + left, nil
	})
	t.Logf("claim, XR, composed resources, VM and snippet gone %s after the delete", took.Round(time.Millisecond))
}

func mustGet(t testing.TB, cp *harness.ControlPlane, o *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	u, err := get(ctxFor(t), cp, o.GroupVersionKind(), o.GetNamespace(), o.GetName())
	if err != nil {
		t.Fatal(err)
	}
	return u
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

// writesAfterStart lists the calls that changed VM id after its first start,
// and whether it was started at all. Starting is the last write of bpg's
// create: vmCreateClone ends in vmCreateStart (proxmoxtf/resource/vm/vm.go:2994
// at v0.111.1), which starts the VM and reads it back, adding a reboot only
// under reboot_after_creation (vm.go:3522), which the Composition leaves off.
func writesAfterStart(rs []proxmoxsim.Request, id int64) (writes []string, started bool) {
	prefix := fmt.Sprintf("/api2/json/nodes/pve1/qemu/%d/", id)
	for _, r := range rs {
		// The guest agent's calls (POST agent/ping, say) read the guest.
		if r.Method == "GET" || !strings.HasPrefix(r.Path, prefix) || strings.HasPrefix(r.Path, prefix+"agent/") || r.Status >= 300 {
			continue
		}
		if !started {
			started = r.Method == "POST" && r.Path == prefix+"status/start"
			continue
		}
		writes = append(writes, r.String())
	}
	return writes, started
}

// identityLease is the identity Lease name in Crossplane's namespace,
// which the XR with uid must control (nil when it does not exist).
func identityLease(t *testing.T, cp *harness.ControlPlane, name string, uid types.UID) *unstructured.Unstructured {
	t.Helper()
	l := &unstructured.Unstructured{}
	l.SetAPIVersion(compose.IdentityAPIVersion)
	l.SetKind(compose.IdentityKind)
	if err := cp.Client.Get(ctxFor(t), client.ObjectKey{Namespace: compose.IdentityNamespace, Name: name}, l); err != nil {
		t.Errorf("identity Lease %s: %v", name, err)
		return nil
	}
	if c := metav1.GetControllerOf(l); c == nil || c.UID != uid {
		t.Errorf("identity Lease %s: want the XR as its controller, got %v", name, c)
	}
	return l
}
