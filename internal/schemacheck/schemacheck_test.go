package schemacheck

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// A small CRD with each schema feature the unknown-field walk must respect.
const testCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.test.dev}
spec:
  group: test.dev
  scope: Namespaced
  names: {kind: Thing, plural: things}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              list:
                type: array
                items:
                  type: object
                  properties:
                    a: {type: string}
              labels:
                type: object
                additionalProperties: {type: string}
              free:
                type: object
                x-kubernetes-preserve-unknown-fields: true
              size:
                type: integer
                default: 3
              name:
                type: string
                x-kubernetes-validations:
                - rule: self.startsWith('t')
                  message: must start with t
`

func thing(spec string) map[string]any {
	obj := map[string]any{}
	if err := yaml.Unmarshal([]byte("apiVersion: test.dev/v1\nkind: Thing\nmetadata: {name: x, namespace: default}\nspec: "+spec), &obj); err != nil {
		panic(err)
	}
	return obj
}

func TestValidate(t *testing.T) {
	crd := &extv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict([]byte(testCRD), crd); err != nil {
		t.Fatal(err)
	}
	if err := Check(context.Background(), crd); err != nil {
		t.Fatal(err)
	}
	vs, err := New(crd)
	if err != nil {
		t.Fatal(err)
	}
	v := vs[0]
	cases := map[string]struct {
		reason string
		spec   string
		want   []string // fields with errors
	}{
		"Valid":             {reason: "declared fields, map values and preserved fields are fine", spec: "{list: [{a: x}], labels: {any: value}, free: {whatever: {deep: 1}}, name: thing}"},
		"UnknownTop":        {reason: "a typo at the top", spec: "{lsit: []}", want: []string{"spec.lsit"}},
		"UnknownInList":     {reason: "a typo in a list item", spec: "{list: [{a: x}, {b: y}]}", want: []string{"spec.list[1].b"}},
		"UnknownMetadata":   {reason: "metadata has a fixed set of fields", spec: "{}", want: []string{"metadata.lables"}},
		"WrongType":         {reason: "OpenAPI types", spec: "{size: big}", want: []string{"spec.size"}},
		"CEL":               {reason: "x-kubernetes-validations run", spec: "{name: widget}", want: []string{"spec.name"}},
		"MapValueWrongType": {reason: "additionalProperties schemas apply", spec: "{labels: {a: 1}}", want: []string{"spec.labels.a"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			obj := thing(tc.spec)
			if name == "UnknownMetadata" {
				obj["metadata"].(map[string]any)["lables"] = map[string]any{}
			}
			var got []string
			for _, e := range v.Validate(context.Background(), obj) {
				got = append(got, e.Field)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s: error fields (-want, +got):\n%s", tc.reason, diff)
			}
			if _, ok := obj["spec"].(map[string]any)["size"]; ok && !strings.Contains(tc.spec, "size") {
				t.Errorf("%s: Validate must not change its argument (defaulting happens on a copy)", tc.reason)
			}
		})
	}
}
