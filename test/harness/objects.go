package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FieldOwner is the server-side apply field manager of everything the
// harness and the tests apply.
const FieldOwner = "homelab-e2e"

// ReadObjects decodes every YAML document in path (empty documents are
// skipped).
func ReadObjects(path string) ([]*unstructured.Unstructured, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	objs, err := DecodeObjects(b)
	if err != nil {
		return nil, fmt.Errorf("cannot decode %s: %w", path, err)
	}
	return objs, nil
}

// DecodeObjects decodes a stream of YAML or JSON documents.
func DecodeObjects(b []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(u.Object) == 0 {
			continue
		}
		objs = append(objs, u)
	}
}

// Apply server-side applies obj, taking ownership of every field it sets.
// obj is left as it was, so it can be changed and applied again.
func (cp *ControlPlane) Apply(ctx context.Context, obj *unstructured.Unstructured) error {
	// The client writes the server's answer (managedFields and all) into
	// what it applies, and the next apply of that would be refused.
	ac := client.ApplyConfigurationFromUnstructured(obj.DeepCopy())
	if err := cp.Client.Apply(ctx, ac, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("cannot apply %s %q: %w", obj.GetKind(), obj.GetName(), err)
	}
	return nil
}

// ApplyFile applies every object in a YAML file, and waits for each CRD in
// it to be Established.
func (cp *ControlPlane) ApplyFile(ctx context.Context, path string) ([]*unstructured.Unstructured, error) {
	objs, err := ReadObjects(path)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if err := cp.Apply(ctx, o); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			if err := cp.waitEstablished(ctx, o.GetName()); err != nil {
				return nil, err
			}
		}
	}
	return objs, nil
}
