package function

import (
	"context"
	"encoding/json"
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with the current output")

// exampleClaims reads the repo's example claims and the Composition's input.
func exampleClaims(t testing.TB) (map[string]*repo.Claim, []byte) {
	t.Helper()
	root := testenv.RepoRoot(t)
	input, err := repo.CompositionInput(filepath.Join(root, repo.CompositionPath))
	if err != nil {
		t.Fatal(err)
	}
	all, err := repo.Claims(filepath.Join(root, repo.ClaimsDir))
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]*repo.Claim{}
	for _, c := range all {
		claims[c.Name] = c
	}
	for _, want := range []string{"dns01", "docker01"} {
		if claims[want] == nil {
			t.Fatalf("example claim %s is missing from %s", want, repo.ClaimsDir)
		}
	}
	return claims, input
}

// responseYAML renders a response stably: protojson's spacing is randomised
// on purpose, so go through a generic value and YAML.
func responseYAML(t testing.TB, rsp *fnv1.RunFunctionResponse) []byte {
	t.Helper()
	b, err := protojson.Marshal(rsp)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testenv.Golden(t, filepath.Join("testdata", name), got, *update)
}

// observedVM is what the provider reports once the VM runs: Ready, with the
// guest agent's addresses (loopback first, as the agent lists it).
func observedVM(xrName string) map[string]any {
	return map[string]any{
		"apiVersion": "ve.proxmox.homelab.dev/v1alpha1",
		"kind":       "VirtualMachine",
		"metadata":   map[string]any{"name": xrName + "-vm"},
		"spec":       map[string]any{"managementPolicies": compose.ManagementPolicies},
		"status": map[string]any{
			"atProvider": map[string]any{
				"vmId":          1053,
				"ipv4Addresses": []any{[]any{"127.0.0.1"}, []any{"10.0.10.53"}},
			},
			"conditions": []any{
				map[string]any{"type": "Ready", "status": "True", "reason": "Available", "lastTransitionTime": "2026-01-01T00:00:00Z"},
				map[string]any{"type": "Synced", "status": "True", "reason": "ReconcileSuccess", "lastTransitionTime": "2026-01-01T00:00:00Z"},
			},
		},
	}
}

// run runs the function on claim c with what is observed.
func run(t *testing.T, c *repo.Claim, input []byte, observed map[string]map[string]any) *fnv1.RunFunctionResponse {
	t.Helper()
	req, err := NewRequest(repo.XRFor(c), input, observed, Offline())
	if err != nil {
		t.Fatal(err)
	}
	rsp, err := (&Function{}).RunFunction(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rsp.GetResults() {
		if r.GetSeverity() == fnv1.Severity_SEVERITY_FATAL {
			t.Fatalf("unexpected Fatal result: %s", r.GetMessage())
		}
	}
	return rsp
}

// held adds to observed the machine's identity objects, as Crossplane
// observes them once the XR holds them.
func held(t testing.TB, xr map[string]any, observed map[string]map[string]any) map[string]map[string]any {
	t.Helper()
	spec, err := SpecOf(xr)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for k, v := range observed {
		out[k] = v
	}
	for _, id := range compose.Identities(spec) {
		out[id.Name] = compose.IdentityObject(id, holderName(xr, "x")).Object
	}
	return out
}

// converge runs the function on claim c as Crossplane does while every
// step succeeds: again with what it desired applied, until it composes the
// VM. It returns the last response.
func converge(t *testing.T, c *repo.Claim, input []byte) *fnv1.RunFunctionResponse {
	t.Helper()
	return convergeFrom(t, c, input, nil)
}

// convergeFrom is converge from what is observed.
func convergeFrom(t *testing.T, c *repo.Claim, input []byte, observed map[string]map[string]any) *fnv1.RunFunctionResponse {
	t.Helper()
	rsp := run(t, c, input, observed)
	for i := 0; i < 3 && !Composed(rsp); i++ {
		rsp = run(t, c, input, Applied(rsp))
	}
	if !Composed(rsp) {
		t.Fatalf("%s: no VM to make after four reconciles", c.Name)
	}
	return rsp
}

// TestGoldenResponses pins the function's full response for each example
// claim at each step Crossplane and the provider take it through: the first
// reconcile (only the identities), the one after the snippet is uploaded
// (the VM, Observe-only: is its id free?), the one that lets the provider
// make the VM, and a later one (the VM running), which shows status and
// readiness.
func TestGoldenResponses(t *testing.T) {
	claims, input := exampleClaims(t)
	cases := map[string]struct {
		reason string
		claim  string
		// steps is how many times the function runs again with what it
		// desired applied (Applied).
		steps int
		// running: the last run observes the VM running.
		running bool
	}{
		"dns01-first":    {reason: "the first reconcile holds the machine's identities and composes nothing else", claim: "dns01"},
		"dns01-checking": {reason: "the snippet exists: the VM follows, Observe-only until the provider reports its id free", claim: "dns01", steps: 2},
		"dns01":          {reason: "static address, pinned node, VLAN and VM id: the VM for the provider to make", claim: "dns01", steps: 3},
		"docker01":       {reason: "DHCP, everything else from the site defaults", claim: "docker01", steps: 3},
		"dns01-observed": {reason: "a running VM fills status.vmId and ipv4Addresses; readiness follows each resource's Ready condition and the guest's address", claim: "dns01", steps: 4, running: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := claims[tc.claim]
			rsp := run(t, c, input, nil)
			for i := 0; i < tc.steps; i++ {
				obs := Applied(rsp)
				if tc.running && i == tc.steps-1 {
					obs["vm"] = observedVM(c.Name)
				}
				rsp = run(t, c, input, obs)
			}
			golden(t, name+".golden.yaml", responseYAML(t, rsp))
		})
	}
}

// TestDeterministic runs the function repeatedly on the same XR: the output,
// and so the composed resources' names, must not change between reconciles.
func TestDeterministic(t *testing.T) {
	claims, input := exampleClaims(t)
	for name, c := range claims {
		var first string
		for i := 0; i < 5; i++ {
			got := string(responseYAML(t, converge(t, c, input)))
			if i == 0 {
				first = got
				if !strings.Contains(got, name+"-vm") || !strings.Contains(got, name+"-user-data") {
					t.Fatalf("%s: composed names are not derived from the XR name:\n%s", name, got)
				}
				continue
			}
			if diff := cmp.Diff(first, got); diff != "" {
				t.Errorf("%s: run %d differs from run 1 (-want, +got):\n%s", name, i+1, diff)
			}
		}
	}
}
