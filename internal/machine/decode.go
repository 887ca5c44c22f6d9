package machine

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// DecodeSpec decodes a claim's or XR's spec from JSON. Unknown fields are
// left alone (Crossplane adds its own, and the schema check names typos).
// Every value of the wrong type is reported with its field path, as the API
// server reports each; so is a string written empty, which the XRD refuses
// too (the Go model cannot tell "" from a field left out, the API server can).
func DecodeSpec(b []byte) (*Spec, error) {
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("cannot decode spec: %w", err)
	}
	var errs Errors
	walkSpec("spec", raw, reflect.TypeOf(Spec{}), &errs)
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
	if typeErrs := typeErrors(errs); len(typeErrs) > 0 {
		return nil, typeErrs
	}
	s := &Spec{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("cannot decode spec: %w", err)
	}
	s.written = errs
	return s, nil
}

func typeErrors(errs Errors) Errors {
	var out Errors
	for _, e := range errs {
		if strings.HasPrefix(e.Detail, "is a ") {
			out = append(out, e)
		}
	}
	return out
}

// walkSpec checks v against the model's type t: a value of another JSON type
// is a type error; an empty string is reported as empty. Fields the model
// does not know are left to the schema check; nulls are left out, as the API
// server drops them.
func walkSpec(path string, v any, t reflect.Type, errs *Errors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return
	}
	bad := func(got string) {
		*errs = append(*errs, &FieldError{Field: path, Value: show(got), Detail: "is a " + jsonType(v) + "; want " + typeName(t)})
	}
	switch t.Kind() {
	case reflect.String:
		s, ok := v.(string)
		switch {
		case !ok:
			bad(fmt.Sprint(v))
		case s == "":
			*errs = append(*errs, &FieldError{Field: path, Detail: "is empty; set a value, or leave the field out"})
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			bad(fmt.Sprint(v))
		}
	case reflect.Int64:
		f, ok := v.(float64)
		if !ok || f != float64(int64(f)) {
			bad(fmt.Sprint(v))
		}
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			bad(fmt.Sprint(v))
			return
		}
		for i, item := range l {
			walkSpec(path+"["+strconv.Itoa(i)+"]", item, t.Elem(), errs)
		}
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			bad(fmt.Sprint(v))
			return
		}
		for _, f := range jsonFields(t) {
			if fv, ok := m[f.name]; ok {
				walkSpec(path+"."+f.name, fv, f.typ, errs)
			}
		}
	}
}

func jsonType(v any) string {
	switch v := v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64:
		if v == float64(int64(v)) {
			return "integer"
		}
		return "number"
	case []any:
		return "list"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int64:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	}
	return "an object"
}

// jsonField is a struct field walkSpec checks: its JSON name and type.
type jsonField struct {
	name string
	typ  reflect.Type
}

var jsonFieldsOf sync.Map // reflect.Type -> []jsonField

// jsonFields are t's fields with a JSON name, in order, read from the type
// once: walkSpec runs on every call of the function.
func jsonFields(t reflect.Type) []jsonField {
	if f, ok := jsonFieldsOf.Load(t); ok {
		return f.([]jsonField)
	}
	var out []jsonField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		out = append(out, jsonField{name: name, typ: f.Type})
	}
	jsonFieldsOf.Store(t, out)
	return out
}
