package machine

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
)

// SpecFrom is DecodeSpec for a spec already decoded from JSON, as the
// function's request carries it: the same Spec, or the same errors, without
// encoding the spec to JSON and decoding it twice (that round trip was a
// sixth of the function's CPU per call). It decodes plain JSON values
// (plainJSON) into the model's fields as encoding/json does; anything it
// does not decode exactly as encoding/json would (another Go type, a key
// that matches a field only when case is ignored, a field type it does not
// know) goes the JSON way.
func SpecFrom(raw any) (*Spec, error) {
	m, ok := raw.(map[string]any)
	if !ok || m == nil || !plainJSON(m) {
		return specViaJSON(raw)
	}
	var errs Errors
	walkSpec("spec", m, specType, &errs)
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
	if typeErrs := typeErrors(errs); len(typeErrs) > 0 {
		return nil, typeErrs
	}
	s := &Spec{}
	if !decodeValue(m, reflect.ValueOf(s).Elem()) {
		return specViaJSON(raw)
	}
	s.written = errs
	return s, nil
}

var specType = reflect.TypeOf(Spec{})

func specViaJSON(raw any) (*Spec, error) {
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("cannot encode spec: %w", err)
	}
	return DecodeSpec(b)
}

// plainJSON reports whether v holds only what encoding/json decodes JSON
// into, and reads back unchanged from its own encoding: nil, bool, valid
// UTF-8 strings, float64 integers within ±2^53 or finite non-integers,
// non-nil []any and map[string]any. (A larger integer is written in its
// shortest decimal form, which an int64 field reads as another number; a
// nil list is written as null.)
func plainJSON(v any) bool {
	switch x := v.(type) {
	case nil, bool:
		return true
	case string:
		return utf8.ValidString(x)
	case float64:
		return !math.IsNaN(x) && !math.IsInf(x, 0) && math.Abs(x) <= 1<<53
	case []any:
		if x == nil {
			return false
		}
		for _, e := range x {
			if !plainJSON(e) {
				return false
			}
		}
		return true
	case map[string]any:
		if x == nil {
			return false
		}
		for k, e := range x {
			if !utf8.ValidString(k) || !plainJSON(e) {
				return false
			}
		}
		return true
	}
	return false
}

// decodeValue sets rv from v as encoding/json would, for a v walkSpec found
// no type error in. It returns false when it cannot be sure to: the caller
// then decodes through JSON.
func decodeValue(v any, rv reflect.Value) bool {
	if v == nil {
		// null leaves the zero value (rv is a new Spec's).
		return true
	}
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			rv.Set(reflect.New(rv.Type().Elem()))
		}
		return decodeValue(v, rv.Elem())
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return false
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return false
		}
		rv.SetBool(b)
	case reflect.Int64:
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) {
			return false
		}
		rv.SetInt(int64(f))
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return false
		}
		out := reflect.MakeSlice(rv.Type(), len(l), len(l))
		for i, e := range l {
			if !decodeValue(e, out.Index(i)) {
				return false
			}
		}
		rv.Set(out)
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return false
		}
		fields, ok := fieldsOf(rv.Type())
		if !ok {
			return false
		}
		for k, e := range obj {
			i, found := fields[k]
			if !found {
				if foldsToField(k, fields) {
					// encoding/json would match it ignoring case.
					return false
				}
				continue
			}
			if !decodeValue(e, rv.Field(i)) {
				return false
			}
		}
	default:
		return false
	}
	return true
}

// foldsToField reports whether encoding/json might match key to one of
// fields ignoring case: a non-ASCII key (Unicode folding) or an ASCII one
// equal to a field's name but for case.
func foldsToField(key string, fields map[string]int) bool {
	for i := 0; i < len(key); i++ {
		if key[i] >= utf8.RuneSelf {
			return true
		}
	}
	for name := range fields {
		if strings.EqualFold(key, name) {
			return true
		}
	}
	return false
}

var structFields sync.Map // reflect.Type -> map[string]int, or nil when unsupported

// fieldsOf maps t's JSON names to field indexes; ok is false when t has a
// field encoding/json would treat in a way decodeValue does not (embedded,
// untagged, or with options beyond omitempty).
func fieldsOf(t reflect.Type) (map[string]int, bool) {
	if f, ok := structFields.Load(t); ok {
		m := f.(map[string]int)
		return m, m != nil
	}
	m := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue // encoding/json ignores it too
		}
		tag, ok := f.Tag.Lookup("json")
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous || !ok || name == "" || name == "-" || (opts != "" && opts != "omitempty") {
			m = nil
			break
		}
		m[name] = i
	}
	structFields.Store(t, m)
	return m, m != nil
}
