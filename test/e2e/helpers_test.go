//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/function"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/test/harness"
)

// The kinds the tests handle. The provider's come from internal/compose, so
// the function and the tests cannot disagree about them.
var (
	gvkMachine  = schema.GroupVersionKind{Group: "homelab.dev", Version: "v1alpha1", Kind: "Machine"}
	gvkXMachine = schema.GroupVersionKind{Group: "homelab.dev", Version: "v1alpha1", Kind: "XMachine"}
	gvkVM       = schema.FromAPIVersionAndKind(compose.VMAPIVersion, compose.VMKind)
	gvkFile     = schema.FromAPIVersionAndKind(compose.FileAPIVersion, compose.FileKind)
)

// Labels Crossplane puts on every composed resource.
const (
	labelClaimName      = "crossplane.io/claim-name"
	labelClaimNamespace = "crossplane.io/claim-namespace"
)

// waitTimeout bounds every wait for the cluster to converge. Composition
// takes a few seconds, but the VM is composed only after the provider has
// uploaded the snippet; the bound is generous for a loaded CI machine, and
// is never the measure of speed (the benchmark is).
const waitTimeout = 3 * time.Minute

// providerTimeout bounds a wait for the provider to act on Proxmox (a
// clone, an update with a reboot, a delete): each is a few terraform runs,
// and a reconcile may wait a minute for a guest agent.
const providerTimeout = 8 * time.Minute

// tools returns the folder of control-plane binaries (see toolsBin); under
// -short it skips t.
func tools(t testing.TB) string {
	t.Helper()
	testenv.Real(t)
	bin, err := toolsBin(testenv.RepoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newNamespace creates a namespace of the test's own and deletes it (and so
// every claim in it) when the test ends.
func newNamespace(t testing.TB, cp *harness.ControlPlane, prefix string) string {
	t.Helper()
	ctx := ctxFor(t)
	ns := &corev1.Namespace{}
	ns.SetGenerateName(prefix + "-")
	if err := cp.Client.Create(ctx, ns); err != nil {
		t.Fatalf("cannot create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = cp.Client.Delete(context.Background(), ns)
	})
	return ns.GetName()
}

// exampleClaim reads crossplane/claims/<name>.yaml and moves it into ns.
func exampleClaim(t testing.TB, name, ns string) *unstructured.Unstructured {
	t.Helper()
	path := filepath.Join(testenv.RepoRoot(t), "crossplane", "claims", name+".yaml")
	objs, err := harness.ReadObjects(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GroupVersionKind() == gvkMachine {
			o.SetNamespace(ns)
			return o
		}
	}
	t.Fatalf("%s holds no Machine claim", path)
	return nil
}

func newObject(gvk schema.GroupVersionKind) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u
}

func newList(gvk schema.GroupVersionKind) *unstructured.UnstructuredList {
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	return l
}

// get reads the object named like obj into a fresh copy.
func get(ctx context.Context, cp *harness.ControlPlane, gvk schema.GroupVersionKind, ns, name string) (*unstructured.Unstructured, error) {
	u := newObject(gvk)
	err := cp.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, u)
	return u, err
}

// composedOf lists the resources of kind gvk composed for the claim ns/name.
func composedOf(ctx context.Context, cp *harness.ControlPlane, gvk schema.GroupVersionKind, ns, name string) ([]unstructured.Unstructured, error) {
	l := newList(gvk)
	sel := client.MatchingLabels{labelClaimNamespace: ns}
	if name != "" {
		sel[labelClaimName] = name
	}
	if err := cp.Client.List(ctx, l, sel); err != nil {
		return nil, fmt.Errorf("cannot list %s: %w", gvk.Kind, err)
	}
	return l.Items, nil
}

// waitFor polls cond until it holds, failing t after waitTimeout with the
// last reason (or error) cond gave.
func waitFor(t testing.TB, what string, cond func(ctx context.Context) (bool, string, error)) time.Duration {
	t.Helper()
	return waitWithin(t, waitTimeout, what, cond)
}

// waitWithin is waitFor with its own bound.
func waitWithin(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string, error)) time.Duration {
	t.Helper()
	ctx := ctxFor(t)
	start := time.Now()
	deadline := start.Add(timeout)
	last := ""
	for {
		ok, why, err := cond(ctx)
		if err != nil {
			// A loaded machine makes the apiserver time out now and then;
			// keep asking until the deadline, and say why if it passes.
			why = "error: " + err.Error()
			ok = false
		}
		if ok {
			return time.Since(start)
		}
		last = why
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last seen: %s", timeout, what, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitComposed waits until the claim ns/name has its VirtualMachine and
// File, and returns them.
func waitComposed(t testing.TB, cp *harness.ControlPlane, ns, name string) (vm, file *unstructured.Unstructured, took time.Duration) {
	t.Helper()
	took = waitFor(t, fmt.Sprintf("claim %s/%s to compose its VM and snippet", ns, name), func(ctx context.Context) (bool, string, error) {
		vms, err := composedOf(ctx, cp, gvkVM, ns, name)
		if err != nil {
			return false, "", err
		}
		files, err := composedOf(ctx, cp, gvkFile, ns, name)
		if err != nil {
			return false, "", err
		}
		if len(vms) != 1 || len(files) != 1 {
			return false, fmt.Sprintf("%d VMs, %d files; %s", len(vms), len(files), claimState(ctx, cp, ns, name)), nil
		}
		vm, file = &vms[0], &files[0]
		return true, "", nil
	})
	return vm, file, took
}

// composeExample applies the example claim name in a new namespace of its
// own and waits until it has composed its VM and snippet.
func composeExample(t testing.TB, cp *harness.ControlPlane, prefix, name string) (claim, vm, file *unstructured.Unstructured) {
	t.Helper()
	claim = exampleClaim(t, name, newNamespace(t, cp, prefix))
	if err := cp.Apply(ctxFor(t), claim); err != nil {
		t.Fatal(err)
	}
	vm, file, _ = waitComposed(t, cp, claim.GetNamespace(), claim.GetName())
	return claim, vm, file
}

// claimState summarises a claim and its XR for a failure message.
func claimState(ctx context.Context, cp *harness.ControlPlane, ns, name string) string {
	c, err := get(ctx, cp, gvkMachine, ns, name)
	if err != nil {
		return fmt.Sprintf("claim: %v", err)
	}
	s := "claim " + conditionsString(c)
	xrName, _, _ := unstructured.NestedString(c.Object, "spec", "resourceRef", "name")
	if xrName == "" {
		return s + "; no XR yet"
	}
	xr, err := get(ctx, cp, gvkXMachine, "", xrName)
	if err != nil {
		return s + fmt.Sprintf("; XR %s: %v", xrName, err)
	}
	return s + "; XR " + xrName + " " + conditionsString(xr)
}

// claimValid is a waitFor condition: the claim's Valid condition (set by the
// function) has the given status and a message containing msg.
func claimValid(cp *harness.ControlPlane, ns, name, status, msg string) func(ctx context.Context) (bool, string, error) {
	return func(ctx context.Context) (bool, string, error) {
		c, err := get(ctx, cp, gvkMachine, ns, name)
		if err != nil {
			return false, "", err
		}
		v := harness.Condition(c, function.ConditionValid)
		return v != nil && v["status"] == status && strings.Contains(fmt.Sprint(v["message"]), msg), "claim " + conditionsString(c), nil
	}
}

func conditionsString(u *unstructured.Unstructured) string {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	parts := make([]string, 0, len(conds))
	for _, c := range conds {
		m, _ := c.(map[string]any)
		parts = append(parts, fmt.Sprintf("%v=%v(%v: %v)", m["type"], m["status"], m["reason"], m["message"]))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

func unstructuredSlice(obj map[string]any, path ...string) ([]any, bool, error) {
	return unstructured.NestedSlice(obj, path...)
}

// xrOf returns the XR bound to the claim ns/name, waiting for the binding.
func xrOf(t testing.TB, cp *harness.ControlPlane, ns, name string) *unstructured.Unstructured {
	t.Helper()
	var xr *unstructured.Unstructured
	waitFor(t, fmt.Sprintf("claim %s/%s to be bound to an XR", ns, name), func(ctx context.Context) (bool, string, error) {
		c, err := get(ctx, cp, gvkMachine, ns, name)
		if err != nil {
			return false, "", err
		}
		xrName, _, _ := unstructured.NestedString(c.Object, "spec", "resourceRef", "name")
		if xrName == "" {
			return false, "no spec.resourceRef yet", nil
		}
		xr, err = get(ctx, cp, gvkXMachine, "", xrName)
		if err != nil {
			return false, err.Error(), client.IgnoreNotFound(err)
		}
		return true, "", nil
	})
	return xr
}

var (
	gvkComposition = schema.GroupVersionKind{Group: "apiextensions.crossplane.io", Version: "v1", Kind: "Composition"}
	gvkCRD         = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}
	gvkMRD         = schema.GroupVersionKind{Group: "apiextensions.crossplane.io", Version: "v1alpha1", Kind: "ManagedResourceDefinition"}
)

func unstructuredString(obj map[string]any, path ...string) (string, bool, error) {
	return unstructured.NestedString(obj, path...)
}

// packageHealthy is a waitFor condition: the pkg.crossplane.io object kind/name
// is Installed and Healthy.
func packageHealthy(cp *harness.ControlPlane, kind, name string) func(ctx context.Context) (bool, string, error) {
	return func(ctx context.Context) (bool, string, error) {
		p, err := get(ctx, cp, schema.GroupVersionKind{Group: "pkg.crossplane.io", Version: "v1", Kind: kind}, "", name)
		if err != nil {
			return false, err.Error(), nil
		}
		ok := harness.ConditionStatus(p, "Installed") == "True" && harness.ConditionStatus(p, "Healthy") == "True"
		return ok, conditionsString(p), nil
	}
}
