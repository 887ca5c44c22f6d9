//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/homelab-infra/homelab-infra/internal/labctl"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// desiredState is what the function asked for: the XR's status and the
// composed resources by name. It is read from the function's golden files
// (internal/function/testdata, kept by its unit tests with -update) or from
// running the function in-process, so the end-to-end tests hold the real
// cluster to exactly what the unit tests pin, with no second copy.
type desiredState struct {
	XRStatus  map[string]any
	Resources map[string]*unstructured.Unstructured
}

// goldenResponse is the part of a RunFunctionResponse (as JSON) we compare.
type goldenResponse struct {
	Desired struct {
		Composite struct {
			Resource map[string]any `json:"resource"`
		} `json:"composite"`
		Resources map[string]struct {
			Resource map[string]any `json:"resource"`
		} `json:"resources"`
	} `json:"desired"`
}

func (g goldenResponse) state() desiredState {
	s := desiredState{Resources: map[string]*unstructured.Unstructured{}}
	s.XRStatus, _, _ = unstructured.NestedMap(g.Desired.Composite.Resource, "status")
	for name, r := range g.Desired.Resources {
		s.Resources[name] = &unstructured.Unstructured{Object: r.Resource}
	}
	return s
}

// goldenDesired reads the function's golden file for an example claim, e.g.
// "dns01" or "dns01-observed".
func goldenDesired(t testing.TB, name string) desiredState {
	t.Helper()
	path := filepath.Join(testenv.RepoRoot(t), "internal", "function", "testdata", name+".golden.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("cannot read the function's golden file: %v", err)
	}
	var g goldenResponse
	if err := yaml.Unmarshal(b, &g); err != nil {
		t.Fatalf("cannot decode %s: %v", path, err)
	}
	if len(g.Desired.Resources) == 0 {
		t.Fatalf("%s holds no desired resources", path)
	}
	return g.state()
}

// inProcessDesired composes claim in-process exactly as `labctl render`
// does (the function run on the XR Crossplane would make of the claim).
func inProcessDesired(t testing.TB, claim *unstructured.Unstructured) desiredState {
	t.Helper()
	b, err := yaml.Marshal(claim.Object)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), claim.GetName()+".yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := labctl.Render(context.Background(), testenv.RepoRoot(t), []string{path})
	if err != nil {
		t.Fatalf("labctl render of claim %s: %v", claim.GetName(), err)
	}
	if len(rs) != 1 {
		t.Fatalf("labctl render of claim %s: want one result, got %d", claim.GetName(), len(rs))
	}
	s := desiredState{XRStatus: rs[0].Status, Resources: map[string]*unstructured.Unstructured{}}
	for _, r := range rs[0].Resources {
		s.Resources[r.Name] = &unstructured.Unstructured{Object: r.Object}
	}
	return s
}

// serverDefaults are spec fields the apiserver (the provider's CRD) or the
// provider itself fills in (Upjet writes an empty initProvider); they are
// compared only when the function sets them.
var serverDefaults = []string{"deletionPolicy", "managementPolicies", "initProvider"}

// diffComposed compares a composed resource in the cluster with what the
// function asked for: kind, name, the function's labels and spec. The
// expectation was made for an XR named wantXR; the real XR, named gotXR by
// Crossplane (the claim's name and a random suffix), shows up in names and
// text, so gotXR is read as wantXR throughout. It returns "" when they
// match, else a -want, +got diff.
func diffComposed(want *unstructured.Unstructured, wantXR string, got *unstructured.Unstructured, gotXR string) string {
	g := &unstructured.Unstructured{Object: renameXR(normalize(got.Object), gotXR, wantXR).(map[string]any)}
	var b strings.Builder
	if want.GetAPIVersion() != g.GetAPIVersion() || want.GetKind() != g.GetKind() {
		b.WriteString("kind: " + cmp.Diff(want.GetAPIVersion()+" "+want.GetKind(), g.GetAPIVersion()+" "+g.GetKind()))
	}
	if want.GetName() != g.GetName() {
		b.WriteString("name: " + cmp.Diff(want.GetName(), g.GetName()))
	}
	for k, v := range want.GetLabels() {
		if g.GetLabels()[k] != v {
			b.WriteString("label " + k + ": " + cmp.Diff(v, g.GetLabels()[k]))
		}
	}
	wantSpec, _, _ := unstructured.NestedMap(want.Object, "spec")
	gotSpec, _, _ := unstructured.NestedMap(g.Object, "spec")
	for _, k := range serverDefaults {
		if _, ok := wantSpec[k]; !ok {
			delete(gotSpec, k)
		}
	}
	if d := cmp.Diff(normalize(wantSpec), gotSpec); d != "" {
		b.WriteString("spec: " + d)
	}
	return b.String()
}

// renameXR replaces from with to in every string of v. from is a generated
// XR name (claim name plus a random suffix), so it matches nothing else.
func renameXR(v any, from, to string) any {
	if from == to {
		return v
	}
	switch x := v.(type) {
	case string:
		return strings.ReplaceAll(x, from, to)
	case map[string]any:
		for k, e := range x {
			x[k] = renameXR(e, from, to)
		}
	case []any:
		for i, e := range x {
			x[i] = renameXR(e, from, to)
		}
	}
	return v
}

// normalize round-trips v through JSON so that numbers decoded from YAML
// (float64), from the apiserver (int64) and from protobuf compare equal.
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return v
	}
	return out
}
