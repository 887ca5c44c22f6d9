//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-infra/homelab-infra/test/harness"
)

// TestStackServesProviderCRDs checks the parts under everything else: the
// apiserver serves the provider's real CRDs and enforces their schemas, and
// the controller-manager's garbage collector removes a managed resource
// whose owner is deleted (which is how a deleted XR's VM goes away).
func TestStackServesProviderCRDs(t *testing.T) {
	t.Parallel()
	cp := stack(t)
	ctx := ctxFor(t)

	// A cluster-scoped owner, as an XR is: the garbage collector ignores a
	// cluster-scoped dependent of a namespaced owner.
	owner := &rbacv1.ClusterRole{}
	owner.SetGenerateName("e2e-owner-")
	if err := cp.Client.Create(ctx, owner); err != nil {
		t.Fatalf("cannot create owner: %v", err)
	}

	vm := newObject(gvkVM)
	vm.SetGenerateName("e2e-direct-")
	// The provider runs: paused, it leaves this bare VM alone in Proxmox.
	vm.SetAnnotations(map[string]string{"crossplane.io/paused": "true"})
	vm.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole", Name: owner.GetName(), UID: owner.GetUID()}})
	_ = unstructured.SetNestedField(vm.Object, map[string]any{
		"nodeName": "pve1",
		"cpu":      []any{map[string]any{"cores": int64(2)}},
	}, "spec", "forProvider")
	if err := cp.Client.Create(ctx, vm); err != nil {
		t.Fatalf("the apiserver refused a valid VirtualMachine: %v", err)
	}

	bad := newObject(gvkVM)
	bad.SetGenerateName("e2e-bad-")
	_ = unstructured.SetNestedField(bad.Object, map[string]any{
		"nodeName": "pve1",
		"cpu":      []any{map[string]any{"cores": "two"}},
	}, "spec", "forProvider")
	err := cp.Client.Create(ctx, bad, client.DryRunAll)
	if err == nil || !strings.Contains(err.Error(), "spec.forProvider.cpu[0].cores") {
		t.Errorf("Create(VirtualMachine with cores: \"two\"): want a schema error naming spec.forProvider.cpu[0].cores, got %v", err)
	}

	if err := cp.Client.Delete(ctx, owner); err != nil {
		t.Fatalf("cannot delete owner: %v", err)
	}
	waitFor(t, "the garbage collector to delete the owned VirtualMachine", func(ctx context.Context) (bool, string, error) {
		_, err := get(ctx, cp, gvkVM, "", vm.GetName())
		if err == nil {
			return false, "still there", nil
		}
		return true, "", client.IgnoreNotFound(err)
	})
}

// TestStackStartFailureStopsEverything starts a stack that cannot finish
// (its provider CRDs folder is empty) and checks that Start fails naming the
// step, and that no process it started outlives the failure.
func TestStackStartFailureStopsEverything(t *testing.T) {
	bin := tools(t)
	tmp := t.TempDir()
	empty := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cp, err := harness.Start(ctx, harness.Config{ToolsBin: bin, ProviderCRDsDir: empty, TempDir: tmp})
	if err == nil {
		cp.Stop()
		t.Fatal("Start with an empty provider CRDs folder succeeded")
	}
	if !strings.Contains(err.Error(), "cannot start provider CRDs") || !strings.Contains(err.Error(), "kube-apiserver") {
		t.Errorf("want an error naming the failed step with the components' log tails, got: %v", err)
	}
	// Every component's command line names its folder under tmp.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), tmp) {
			t.Errorf("a process outlived the failed start: %s: %s", p, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}
