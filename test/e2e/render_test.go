//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/test/harness"
)

// TestCrossplaneRender renders each example claim's XR with the real
// `crossplane composition render` (CLI v2.5.0), which runs Crossplane core's
// own composition engine (--crossplane-binary) against function-machine run
// as a Development-runtime function (--insecure, no Docker). The snippet is
// passed as observed and Ready (--observed-resources), since the VM is
// composed only once it exists; no other machines are passed as required
// resources. What it prints must be what the function's golden files pin:
// this is what a user sees when they render our Composition themselves.
func TestCrossplaneRender(t *testing.T) {
	t.Parallel()
	bin := tools(t)
	root := testenv.RepoRoot(t)
	fn, err := functionBinary(root)
	if err != nil {
		t.Fatal(err)
	}
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	target := "127.0.0.1:" + strconv.Itoa(port)
	dir := t.TempDir()
	p, err := harness.StartProcess("function-machine", filepath.Join(dir, "function.log"), []string{"PATH=/usr/bin:/bin"},
		fn, "--insecure", "--address="+target, "--metrics-address=")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(5 * time.Second)
		if t.Failed() {
			t.Logf("function log:\n%s", p.Tail(40))
		}
	})
	if err := harness.WaitTCP(context.Background(), target, 30*time.Second, p); err != nil {
		t.Fatalf("%v\n%s", err, p.Tail(40))
	}

	for _, name := range []string{"dns01", "docker01"} {
		t.Run(name, func(t *testing.T) {
			claim := exampleClaim(t, name, "infra-machines")
			xr := repo.XRFor(&repo.Claim{Doc: repo.Doc{Object: claim.Object}, Name: claim.GetName(), Namespace: claim.GetNamespace()})
			xrFile := filepath.Join(dir, name+"-xr.yaml")
			b, err := yaml.Marshal(xr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(xrFile, b, 0o600); err != nil {
				t.Fatal(err)
			}
			want := goldenDesired(t, name)
			// What exists once the function has run up to the VM: its
			// identities held, the snippet uploaded, the VM read (as
			// Observe-only) and found absent.
			var ob []byte
			for rname, w := range want.Resources {
				o := w.DeepCopy()
				o.SetAnnotations(map[string]string{"crossplane.io/composition-resource-name": rname})
				o.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Ready", "status": "True", "reason": "Available"}}}
				if rname == compose.VM {
					_ = unstructured.SetNestedSlice(o.Object, compose.ObservePolicies, "spec", "managementPolicies")
					o.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Synced", "status": "False", "reason": "ReconcileError",
						"message": "observe failed: external resource does not exist"}}}
				}
				b, err := yaml.Marshal(o.Object)
				if err != nil {
					t.Fatal(err)
				}
				ob = append(append(ob, "---\n"...), b...)
			}
			observedFile := filepath.Join(dir, name+"-observed.yaml")
			if err := os.WriteFile(observedFile, ob, 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, filepath.Join(bin, "crossplane-cli"), "composition", "render",
				xrFile,
				filepath.Join(root, "crossplane", "composition.yaml"),
				filepath.Join(root, "crossplane", "functions.yaml"),
				"--observed-resources="+observedFile,
				"--xrd="+filepath.Join(root, "crossplane", "xrd.yaml"),
				"--crossplane-binary="+filepath.Join(bin, "crossplane"),
				// functions.yaml already asks for the Development runtime;
				// only the port is ours.
				"--function-annotations=render.crossplane.io/runtime-development-target="+target,
			)
			cmd.Dir = dir
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("crossplane composition render: %v\n%s", err, stderr.String())
			}
			objs, err := harness.DecodeObjects(out)
			if err != nil {
				t.Fatalf("cannot decode the render output: %v\n%s", err, out)
			}

			seen := map[string]bool{}
			for _, o := range objs {
				if o.GetKind() == "XMachine" {
					st, _, _ := unstructured.NestedMap(o.Object, "status")
					for k, w := range want.XRStatus {
						if d := cmp.Diff(normalize(w), normalize(st[k])); d != "" {
							t.Errorf("rendered XR status.%s differs from the golden file (-want, +got):\n%s", k, d)
						}
					}
					continue
				}
				rname := o.GetAnnotations()["crossplane.io/composition-resource-name"]
				w, ok := want.Resources[rname]
				if !ok {
					t.Errorf("render printed %s %s (resource %q) that the golden file does not have", o.GetKind(), o.GetName(), rname)
					continue
				}
				seen[rname] = true
				if d := diffComposed(w, name, o, name); d != "" {
					t.Errorf("rendered %q differs from internal/function/testdata/%s.golden.yaml (-want, +got):\n%s", rname, name, d)
				}
			}
			for rname := range want.Resources {
				if !seen[rname] {
					t.Errorf("render did not print resource %q of the golden file; output:\n%s", rname, out)
				}
			}
		})
	}
}
