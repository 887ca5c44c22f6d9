package argocdhealth

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"sigs.k8s.io/yaml"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

func obj(t *testing.T, y string) map[string]any {
	t.Helper()
	o := map[string]any{}
	if err := yaml.Unmarshal([]byte(y), &o); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestOurChecks runs deploy/argocd/argocd-cm.yaml's scripts on claims,
// composites and Applications as Crossplane and Argo CD write them.
func TestOurChecks(t *testing.T) {
	c, err := Load(filepath.Join(testenv.RepoRoot(t), "deploy", "argocd", "argocd-cm.yaml"), "")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		reason string
		obj    string
		want   Status
	}{
		"MachineNew": {
			reason: "A claim Crossplane has not touched yet is still progressing.",
			obj:    "apiVersion: homelab.dev/v1alpha1\nkind: Machine\nmetadata: {name: dns01}\n",
			want:   Status{Status: Progressing, Message: "Waiting for Crossplane to compose the Machine"},
		},
		"MachineRefused": {
			reason: "A claim the function refused is Degraded with the function's message, even though Crossplane still says Synced.",
			obj: `apiVersion: homelab.dev/v1alpha1
kind: Machine
status:
  conditions:
  - {type: Synced, status: "True", reason: ReconcileSuccess}
  - {type: Valid, status: "False", reason: InvalidSpec, message: "spec.class: \"huge\" is not a class; use one of large, medium, small"}
  - {type: Ready, status: "False", reason: Creating}
`,
			want: Status{Status: Degraded, Message: `spec.class: "huge" is not a class; use one of large, medium, small`},
		},
		"MachineNotSynced": {
			reason: "A claim Crossplane cannot reconcile is Degraded.",
			obj: `apiVersion: homelab.dev/v1alpha1
kind: Machine
status:
  conditions:
  - {type: Synced, status: "False", reason: ReconcileError, message: "cannot compose resources"}
`,
			want: Status{Status: Degraded, Message: "cannot compose resources"},
		},
		"MachineBooting": {
			reason: "A composed claim whose VM is not up yet is Progressing with Crossplane's reason.",
			obj: `apiVersion: homelab.dev/v1alpha1
kind: Machine
status:
  conditions:
  - {type: Synced, status: "True", reason: ReconcileSuccess}
  - {type: Valid, status: "True", reason: Composed}
  - {type: Ready, status: "False", reason: Creating, message: "Unready resources: vm"}
`,
			want: Status{Status: Progressing, Message: "Unready resources: vm"},
		},
		"MachineReady": {
			reason: "A claim whose VM is Ready is Healthy.",
			obj: `apiVersion: homelab.dev/v1alpha1
kind: Machine
status:
  conditions:
  - {type: Synced, status: "True", reason: ReconcileSuccess}
  - {type: Valid, status: "True", reason: Composed}
  - {type: Ready, status: "True", reason: Available}
`,
			want: Status{Status: Healthy, Message: "The VM is ready"},
		},
		"XMachineSharesTheRule": {
			reason: "The XMachine key aliases the Machine script: a refused composite is Degraded too.",
			obj: `apiVersion: homelab.dev/v1alpha1
kind: XMachine
status:
  conditions:
  - {type: Valid, status: "False", reason: InvalidSpec, message: "spec.network.ip: outside spec.network.cidr"}
`,
			want: Status{Status: Degraded, Message: "spec.network.ip: outside spec.network.cidr"},
		},
		"ApplicationHealth": {
			reason: "An app of apps waits on a child Application's own health.",
			obj:    "apiVersion: argoproj.io/v1alpha1\nkind: Application\nstatus:\n  health: {status: Degraded, message: one claim refused}\n",
			want:   Status{Status: Degraded, Message: "one claim refused"},
		},
		"ApplicationNew": {
			reason: "An Application without health yet is Progressing, so the next wave waits.",
			obj:    "apiVersion: argoproj.io/v1alpha1\nkind: Application\n",
			want:   Status{Status: Progressing},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := c.Assess(obj(t, tc.obj))
			if err != nil {
				t.Fatalf("%s\nAssess: %v", tc.reason, err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(Status{}, "Script")); diff != "" {
				t.Errorf("%s\nAssess (-want, +got):\n%s", tc.reason, diff)
			}
		})
	}
}

// TestLookup checks Argo CD's order of lookup and its refusals.
func TestLookup(t *testing.T) {
	cm := func(data string) string {
		f := filepath.Join(t.TempDir(), "cm.yaml")
		if err := os.WriteFile(f, []byte("apiVersion: v1\nkind: ConfigMap\ndata:\n"+data), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	builtin := t.TempDir()
	for dir, status := range map[string]string{"_.example.io/_": "Suspended", "a.example.io/Thing": "Missing"} {
		if err := os.MkdirAll(filepath.Join(builtin, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(builtin, dir, "health.lua"), []byte(`return {status = "`+status+`", message = string.lower("BUILT-IN")}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := map[string]struct {
		reason  string
		data    string
		obj     string
		want    Status
		wantErr bool
	}{
		"ExactOverride": {
			reason: "An argocd-cm key for the exact kind wins over a wildcard one and over built-ins.",
			data:   "  resource.customizations: |\n    a.example.io/Thing: {health.lua: 'return {status = \"Healthy\"}'}\n    \"*.example.io/*\": {health.lua: 'return {status = \"Degraded\"}'}\n",
			obj:    "apiVersion: a.example.io/v1\nkind: Thing\n",
			want:   Status{Status: Healthy, Script: "argocd-cm a.example.io/Thing"},
		},
		"SplitKey": {
			reason: "The resource.customizations.health.<group>_<kind> form is read too.",
			data:   "  resource.customizations.health.a.example.io_Thing: 'return {status = \"Healthy\"}'\n",
			obj:    "apiVersion: a.example.io/v1\nkind: Thing\n",
			want:   Status{Status: Healthy, Script: "argocd-cm a.example.io/Thing"},
		},
		"BuiltinExact": {
			reason: "Without an override the built-in script for the exact kind runs, with every library open.",
			data:   "  other: x\n",
			obj:    "apiVersion: a.example.io/v1\nkind: Thing\n",
			want:   Status{Status: Missing, Message: "built-in", Script: "built-in a.example.io/Thing"},
		},
		"BuiltinWildcard": {
			reason: "Then a built-in wildcard folder, '_' standing for '*'.",
			data:   "  other: x\n",
			obj:    "apiVersion: b.example.io/v1\nkind: Other\n",
			want:   Status{Status: Suspended, Message: "built-in", Script: "built-in _.example.io/_"},
		},
		"OverridesHaveNoStringLibrary": {
			reason:  "argocd-cm scripts run without the string library, as in Argo CD: a script that uses it fails here as it would there.",
			data:    "  resource.customizations.health.a.example.io_Thing: 'return {status = string.lower(\"HEALTHY\")}'\n",
			obj:     "apiVersion: a.example.io/v1\nkind: Thing\n",
			wantErr: true,
		},
		"AmbiguousWildcards": {
			reason:  "Two argocd-cm wildcards matching one kind are refused: Argo CD would pick one at random.",
			data:    "  resource.customizations: |\n    \"*.example.io/*\": {health.lua: 'return {status = \"Healthy\"}'}\n    \"a.example.io/*\": {health.lua: 'return {status = \"Degraded\"}'}\n",
			obj:     "apiVersion: a.example.io/v1\nkind: Thing\n",
			wantErr: true,
		},
		"UnknownCode": {
			reason: "A status Argo CD does not know becomes Unknown, as Argo CD makes it.",
			data:   "  resource.customizations.health.a.example.io_Thing: 'return {status = \"Fine\"}'\n",
			obj:    "apiVersion: a.example.io/v1\nkind: Thing\n",
			want:   Status{Status: Unknown, Message: `the script returned status "Fine", which Argo CD does not know`, Script: "argocd-cm a.example.io/Thing"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := Load(cm(tc.data), builtin)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Assess(obj(t, tc.obj))
			if (err != nil) != tc.wantErr {
				t.Fatalf("%s\nAssess: err = %v, want error %v", tc.reason, err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\nAssess (-want, +got):\n%s", tc.reason, diff)
			}
		})
	}
}
