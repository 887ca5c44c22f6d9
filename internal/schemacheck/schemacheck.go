// Package schemacheck validates objects against CRD schemas in-process, the
// way kube-apiserver does on create: structural schema, defaulting, OpenAPI
// validation, embedded ObjectMeta, list-type invariants and CEL
// x-kubernetes-validations. It adds one check the server does not make:
// unknown fields. The server prunes them silently, so a misspelt field would
// vanish instead of failing; here it is an error.
//
// The tests validate every composed resource against the provider's real
// CRDs with it, and labctl validate checks claims against the CRD Crossplane
// generates from our XRD.
package schemacheck

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	metavalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// Validator validates objects of one kind and version.
type Validator struct {
	GVK        schema.GroupVersionKind
	Namespaced bool

	structural *structuralschema.Structural
	openapi    validation.SchemaValidator
	cel        *cel.Validator
}

// ReadCRD reads a CustomResourceDefinition from a YAML file.
func ReadCRD(path string) (*extv1.CustomResourceDefinition, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read CRD: %w", err)
	}
	crd := &extv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(b, crd); err != nil {
		return nil, fmt.Errorf("cannot decode CRD %s: %w", path, err)
	}
	return crd, nil
}

// Check validates the CRD itself as the API server does when it is created:
// a schema that is not structural, a CEL rule that does not compile or costs
// too much, all fail here.
func Check(ctx context.Context, crd *extv1.CustomResourceDefinition) error {
	internal, err := toInternal(crd)
	if err != nil {
		return err
	}
	if errs := crdvalidation.ValidateCustomResourceDefinition(ctx, internal); len(errs) > 0 {
		return fmt.Errorf("CRD %s is invalid: %w", crd.GetName(), errs.ToAggregate())
	}
	return nil
}

func toInternal(crd *extv1.CustomResourceDefinition) (*apiextensions.CustomResourceDefinition, error) {
	v1 := crd.DeepCopy()
	extv1.SetObjectDefaults_CustomResourceDefinition(v1)
	internal := &apiextensions.CustomResourceDefinition{}
	if err := extv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(v1, internal, nil); err != nil {
		return nil, fmt.Errorf("cannot convert CRD %s: %w", crd.GetName(), err)
	}
	return internal, nil
}

// New builds validators for every version of a CRD.
func New(crd *extv1.CustomResourceDefinition) ([]*Validator, error) {
	internal, err := toInternal(crd)
	if err != nil {
		return nil, err
	}
	var out []*Validator
	for _, v := range internal.Spec.Versions {
		s := internal.Spec.Validation
		if v.Schema != nil {
			s = v.Schema
		}
		if s == nil || s.OpenAPIV3Schema == nil {
			return nil, fmt.Errorf("CRD %s version %s has no schema", crd.GetName(), v.Name)
		}
		st, err := structuralschema.NewStructural(s.OpenAPIV3Schema)
		if err != nil {
			return nil, fmt.Errorf("CRD %s version %s: schema is not structural: %w", crd.GetName(), v.Name, err)
		}
		openapi, _, err := validation.NewSchemaValidator(s.OpenAPIV3Schema)
		if err != nil {
			return nil, fmt.Errorf("CRD %s version %s: cannot build the schema validator: %w", crd.GetName(), v.Name, err)
		}
		out = append(out, &Validator{
			GVK:        schema.GroupVersionKind{Group: internal.Spec.Group, Version: v.Name, Kind: internal.Spec.Names.Kind},
			Namespaced: internal.Spec.Scope == apiextensions.NamespaceScoped,
			structural: st,
			openapi:    openapi,
			// CEL programs compile here, once, as the API server caches them.
			cel: cel.NewValidator(st, true, celconfig.PerCallLimit),
		})
	}
	return out, nil
}

// Set is validators by group, version and kind.
type Set map[schema.GroupVersionKind]*Validator

// LoadDir reads every CRD (*.yaml) in a folder.
func LoadDir(dir string) (Set, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("cannot list CRDs: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no CRDs (*.yaml) in %s", dir)
	}
	set := Set{}
	for _, f := range files {
		crd, err := ReadCRD(f)
		if err != nil {
			return nil, err
		}
		vs, err := New(crd)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			set[v.GVK] = v
		}
	}
	return set, nil
}

// Validate validates obj (left unchanged) as a create request would.
func (s Set) Validate(ctx context.Context, obj map[string]any) field.ErrorList {
	u := &unstructured.Unstructured{Object: obj}
	gvk := u.GroupVersionKind()
	v, ok := s[gvk]
	if !ok {
		return field.ErrorList{field.NotSupported(field.NewPath("kind"), gvk.String(), s.kinds())}
	}
	return v.Validate(ctx, obj)
}

func (s Set) kinds() []string {
	var ks []string
	for gvk := range s {
		ks = append(ks, gvk.String())
	}
	sort.Strings(ks)
	return ks
}

// Validate validates obj (left unchanged) as a create request would, plus the
// unknown-field check.
func (v *Validator) Validate(ctx context.Context, in map[string]any) field.ErrorList {
	obj, err := normalize(in)
	if err != nil {
		return field.ErrorList{field.Invalid(field.NewPath(""), nil, err.Error())}
	}
	u := &unstructured.Unstructured{Object: obj}
	var errs field.ErrorList
	if u.GetKind() != v.GVK.Kind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), u.GetKind(), "must be "+v.GVK.Kind))
	}
	if u.GetAPIVersion() != v.GVK.GroupVersion().String() {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), u.GetAPIVersion(), "must be "+v.GVK.GroupVersion().String()))
	}
	if len(errs) > 0 {
		return errs
	}

	errs = append(errs, Unknown(obj, v.structural)...)
	// The server drops nulls of fields that are not nullable (`tags:` with
	// nothing after it), defaults, then validates, and drops status on
	// create (apiextensions-apiserver v0.35.4,
	// pkg/apiserver/customresource_handler.go, unstructuredSchemaCoercer.apply).
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(obj, v.structural)
	structuraldefaulting.Default(obj, v.structural)
	delete(obj, "status")

	errs = append(errs, metavalidation.ValidateObjectMetaAccessor(u, v.Namespaced, metavalidation.NameIsDNSSubdomain, field.NewPath("metadata"))...)
	errs = append(errs, validation.ValidateCustomResource(nil, obj, v.openapi)...)
	errs = append(errs, schemaobjectmeta.Validate(nil, obj, v.structural, false)...)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, v.structural, obj)...)
	for _, e := range errs {
		// Like the server: CEL does not run over values of the wrong type.
		if e.Type == field.ErrorTypeTypeInvalid {
			return named(errs)
		}
	}
	celErrs, _ := v.cel.Validate(ctx, nil, v.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return named(append(errs, celErrs...))
}

// named gives a field to the errors kube-openapi's format check leaves
// without one ("<nil>: Invalid value: \"\": Checked value must be of type
// integer (default format) in spec.proxmox.vmId"), from the path its detail
// ends with, and drops them where a type error already names that field:
// the API server prints both; a message must name the field (issue 19).
func named(errs field.ErrorList) field.ErrorList {
	typed := map[string]bool{}
	for _, e := range errs {
		if e.Type == field.ErrorTypeTypeInvalid || strings.Contains(e.Detail, "must be of type") && e.Field != "<nil>" && e.Field != "" {
			typed[e.Field] = true
		}
	}
	out := errs[:0]
	for _, e := range errs {
		if e.Field == "<nil>" || e.Field == "" {
			if i := strings.LastIndex(e.Detail, " in "); i >= 0 {
				e.Field = e.Detail[i+len(" in "):]
			}
			if typed[e.Field] {
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

// TransitionErrors are the errors an update from old to obj meets that a
// create of obj does not: the XRD's transition rules (CEL rules on oldSelf),
// as the API server runs them on an update.
func (v *Validator) TransitionErrors(ctx context.Context, obj, old map[string]any) field.ErrorList {
	prep := func(in map[string]any) (map[string]any, error) {
		o, err := normalize(in)
		if err != nil {
			return nil, err
		}
		structuraldefaulting.PruneNonNullableNullsWithoutDefaults(o, v.structural)
		structuraldefaulting.Default(o, v.structural)
		delete(o, "status")
		return o, nil
	}
	n, err := prep(obj)
	if err != nil {
		return field.ErrorList{field.Invalid(field.NewPath(""), nil, err.Error())}
	}
	o, err := prep(old)
	if err != nil {
		return field.ErrorList{field.Invalid(field.NewPath(""), nil, err.Error())}
	}
	created, _ := v.cel.Validate(ctx, nil, v.structural, n, nil, celconfig.RuntimeCELCostBudget)
	updated, _ := v.cel.Validate(ctx, nil, v.structural, n, o, celconfig.RuntimeCELCostBudget)
	seen := map[string]bool{}
	for _, e := range created {
		seen[e.Field+"\x00"+e.Detail] = true
	}
	var out field.ErrorList
	for _, e := range updated {
		if !seen[e.Field+"\x00"+e.Detail] {
			out = append(out, e)
		}
	}
	return out
}

// normalize copies obj through JSON, as the API server decodes a request:
// whole numbers become int64, any Go value becomes its JSON form.
func normalize(obj map[string]any) (map[string]any, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the object: %w", err)
	}
	out := map[string]any{}
	if err := utiljson.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("cannot decode the object: %w", err)
	}
	return out, nil
}

// metadataFields are the ObjectMeta fields an object may carry.
var metadataFields = map[string]bool{
	"name": true, "generateName": true, "namespace": true, "labels": true, "annotations": true,
	"finalizers": true, "ownerReferences": true, "uid": true, "resourceVersion": true,
	"generation": true, "creationTimestamp": true, "deletionTimestamp": true,
	"deletionGracePeriodSeconds": true, "managedFields": true, "selfLink": true,
}

// Unknown reports every field of obj that the schema does not declare and
// that pruning would therefore drop without a word.
func Unknown(obj map[string]any, s *structuralschema.Structural) field.ErrorList {
	var errs field.ErrorList
	for k, val := range obj {
		switch k {
		case "apiVersion", "kind":
			continue
		case "metadata":
			errs = append(errs, unknownMetadata(field.NewPath("metadata"), val)...)
			continue
		}
		p := field.NewPath(k)
		ps, ok := s.Properties[k]
		if !ok {
			errs = append(errs, unknownField(p))
			continue
		}
		errs = append(errs, unknown(p, val, &ps)...)
	}
	sortErrs(errs)
	return errs
}

func unknownMetadata(p *field.Path, val any) field.ErrorList {
	m, ok := val.(map[string]any)
	if !ok {
		return nil
	}
	var errs field.ErrorList
	for k := range m {
		if !metadataFields[k] {
			errs = append(errs, unknownField(p.Child(k)))
		}
	}
	return errs
}

func unknown(p *field.Path, val any, s *structuralschema.Structural) field.ErrorList {
	if s == nil || s.XPreserveUnknownFields {
		return nil
	}
	var errs field.ErrorList
	switch x := val.(type) {
	case map[string]any:
		if s.XEmbeddedResource {
			if md, ok := x["metadata"]; ok {
				errs = append(errs, unknownMetadata(p.Child("metadata"), md)...)
			}
		}
		for k, child := range x {
			if s.XEmbeddedResource && (k == "apiVersion" || k == "kind" || k == "metadata") {
				continue
			}
			if ps, ok := s.Properties[k]; ok {
				errs = append(errs, unknown(p.Child(k), child, &ps)...)
				continue
			}
			if s.AdditionalProperties != nil {
				if s.AdditionalProperties.Structural != nil {
					errs = append(errs, unknown(p.Key(k), child, s.AdditionalProperties.Structural)...)
				}
				continue
			}
			errs = append(errs, unknownField(p.Child(k)))
		}
	case []any:
		for i, item := range x {
			errs = append(errs, unknown(p.Index(i), item, s.Items)...)
		}
	}
	return errs
}

func unknownField(p *field.Path) *field.Error {
	return field.Forbidden(p, "unknown field: the schema does not declare it, so the API server would drop it silently; check its spelling and place")
}

func sortErrs(errs field.ErrorList) {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
}

// Messages renders errors one per line, in a stable order.
func Messages(errs field.ErrorList) string {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	sort.Strings(msgs)
	return strings.Join(msgs, "\n")
}
