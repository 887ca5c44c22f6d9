package compose_test

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/homelab-infra/homelab-infra/internal/cloudinit"
	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/function"
	"github.com/homelab-infra/homelab-infra/internal/machine"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/schemacheck"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// providerSchemas loads our provider's generated CRDs (provider/package/crds).
func providerSchemas(t *testing.T) schemacheck.Set {
	t.Helper()
	set, err := schemacheck.LoadDir(testenv.ProviderCRDsDir(t))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// examples returns the example claims and the function input of the repo.
func examples(t *testing.T) ([]*repo.Claim, *machine.Input) {
	t.Helper()
	root := testenv.RepoRoot(t)
	in, err := repo.LoadInput(filepath.Join(root, repo.CompositionPath))
	if err != nil {
		t.Fatal(err)
	}
	claims, err := repo.Claims(filepath.Join(root, repo.ClaimsDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) < 2 {
		t.Fatalf("want the dns01 and docker01 example claims, found %d claims", len(claims))
	}
	return claims, in
}

func composeAll(t testing.TB, c *repo.Claim, in *machine.Input) []compose.Resource {
	t.Helper()
	m, err := machine.Resolve(c.Spec, in, nil)
	if err != nil {
		t.Fatalf("%s: %v", c.Where(), err)
	}
	ud, err := cloudinit.Render(function.UserDataConfig(m))
	if err != nil {
		t.Fatal(err)
	}
	return compose.Resources(c.Name, c.Namespace+"/"+c.Name, m, ud, m.Class.DiskGiB)
}

// TestComposedResourcesMatchProviderSchemas validates every composed resource,
// for every example claim in every class, against the provider's CRDs the way
// kube-apiserver would on create (structural schema, defaulting, OpenAPI, CEL)
// and rejects any field the schema does not declare.
func TestComposedResourcesMatchProviderSchemas(t *testing.T) {
	set := providerSchemas(t)
	claims, in := examples(t)
	classes := make([]string, 0, len(in.Classes))
	for c := range in.Classes {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	n := 0
	for _, c := range claims {
		for _, class := range classes {
			cc := *c
			spec := *c.Spec
			spec.Class = class
			cc.Spec = &spec
			for _, r := range composeAll(t, &cc, in) {
				n++
				if errs := set.Validate(context.Background(), r.Object.Object); len(errs) > 0 {
					t.Errorf("%s, class %s: composed resource %q is invalid against the provider's CRD:\n%s", c.Name, class, r.Name, schemacheck.Messages(errs))
				}
			}
		}
	}
	if want := len(claims) * len(classes) * 2; n != want {
		t.Errorf("validated %d resources, want %d (2 per claim and class)", n, want)
	}
}

// TestSchemaCheckCanFail proves the check above is not vacuous: each of these
// mistakes in a composed resource must be caught.
func TestSchemaCheckCanFail(t *testing.T) {
	set := providerSchemas(t)
	claims, in := examples(t)
	rs := composeAll(t, claims[0], in)
	byName := map[string]map[string]any{}
	for _, r := range rs {
		byName[r.Name] = r.Object.Object
	}
	cases := map[string]struct {
		reason   string
		resource string
		mutate   func(obj map[string]any)
		field    string
	}{
		"MisspeltField": {
			reason:   "vlan instead of vlanId would be pruned silently by the API server",
			resource: compose.VM,
			mutate: func(o map[string]any) {
				nic := dig(o, "spec", "forProvider", "networkDevice").([]any)[0].(map[string]any)
				nic["vlan"] = nic["vlanId"]
				delete(nic, "vlanId")
			},
			field: "spec.forProvider.networkDevice[0].vlan",
		},
		"FieldAtWrongLevel": {
			reason:   "userDataFileId belongs inside initialization[]",
			resource: compose.VM,
			mutate: func(o map[string]any) {
				dig(o, "spec", "forProvider").(map[string]any)["userDataFileId"] = "local:snippets/x.yaml"
			},
			field: "spec.forProvider.userDataFileId",
		},
		"WrongType": {
			reason:   "cores is a number, not a string",
			resource: compose.VM,
			mutate: func(o map[string]any) {
				dig(o, "spec", "forProvider", "cpu").([]any)[0].(map[string]any)["cores"] = "two"
			},
			field: "spec.forProvider.cpu[0].cores",
		},
		"BlockNotAList": {
			reason:   "Upjet blocks are lists of objects",
			resource: compose.VM,
			mutate: func(o map[string]any) {
				fp := dig(o, "spec", "forProvider").(map[string]any)
				fp["agent"] = map[string]any{"enabled": true}
			},
			field: "spec.forProvider.agent",
		},
		"MissingRequiredByCEL": {
			reason:   "the provider's CEL rule requires nodeName for managed resources",
			resource: compose.UserData,
			mutate:   func(o map[string]any) { delete(dig(o, "spec", "forProvider").(map[string]any), "nodeName") },
			field:    "spec",
		},
		"BadEnum": {
			reason:   "deletionPolicy is an enum",
			resource: compose.UserData,
			mutate:   func(o map[string]any) { o["spec"].(map[string]any)["deletionPolicy"] = "Keep" },
			field:    "spec.deletionPolicy",
		},
		"BadName": {
			reason:   "metadata.name must be a DNS subdomain",
			resource: compose.VM,
			mutate:   func(o map[string]any) { o["metadata"].(map[string]any)["name"] = "DNS01_vm" },
			field:    "metadata.name",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			obj := runtime.DeepCopyJSON(byName[tc.resource])
			tc.mutate(obj)
			errs := set.Validate(context.Background(), obj)
			var fields []string
			for _, e := range errs {
				fields = append(fields, e.Field)
				if e.Field == tc.field {
					return
				}
			}
			t.Errorf("%s: want an error at %s, got errors at %v:\n%s", tc.reason, tc.field, fields, schemacheck.Messages(errs))
		})
	}
}

func dig(o map[string]any, path ...string) any {
	var cur any = o
	for _, p := range path {
		cur = cur.(map[string]any)[p]
	}
	return cur
}

// TestResourceNamesAndKinds pins the contract with the e2e suite: the
// composed resource names and kinds.
func TestResourceNamesAndKinds(t *testing.T) {
	claims, in := examples(t)
	for _, c := range claims {
		var got []string
		for _, r := range composeAll(t, c, in) {
			got = append(got, r.Name+"="+r.Object.GetKind()+"/"+r.Object.GetName())
		}
		want := []string{"user-data=File/" + c.Name + "-user-data", "vm=VirtualMachine/" + c.Name + "-vm"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: composed resources (-want, +got):\n%s", c.Name, diff)
		}
		if !strings.HasPrefix(compose.SnippetID(mustResolve(t, c, in)), in.Defaults.SnippetDatastore+":snippets/") {
			t.Errorf("%s: the snippet id must be <datastore>:snippets/<file>", c.Name)
		}
	}
}

func mustResolve(t *testing.T, c *repo.Claim, in *machine.Input) *machine.Resolved {
	t.Helper()
	m, err := machine.Resolve(c.Spec, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
