package function

import (
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"
)

// structBuilder builds protobuf Structs as structpb.NewStruct does (the
// same Struct, the same errors), taking each Value and its kind from a
// chunk instead of allocating the two alone: a composed VM is some hundred
// Values, and allocating them one by one was a quarter of the function's
// CPU per call (issue 21). A value of a type it does not build itself goes
// to structpb.NewValue.
//
// A chunk lives as long as any Value in it, that is as long as the
// response: a builder is for one call.
type structBuilder struct {
	vals    []structpb.Value
	strs    []structpb.Value_StringValue
	nums    []structpb.Value_NumberValue
	bools   []structpb.Value_BoolValue
	structs []structpb.Value_StructValue
	lists   []structpb.Value_ListValue
}

// chunkLen is how many of a kind a chunk holds: about what one composed VM
// needs of strings.
const chunkLen = 64

// take returns the next element of *s, a new chunk when it is used up.
func take[T any](s *[]T) *T {
	if len(*s) == 0 {
		*s = make([]T, chunkLen)
	}
	e := &(*s)[0]
	*s = (*s)[1:]
	return e
}

func (b *structBuilder) newStruct(m map[string]any) (*structpb.Struct, error) {
	x := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(m))}
	for k, v := range m {
		if !utf8.ValidString(k) {
			return structpb.NewStruct(map[string]any{k: nil}) // its error
		}
		var err error
		if x.Fields[k], err = b.newValue(v); err != nil {
			return nil, err
		}
	}
	return x, nil
}

func (b *structBuilder) newValue(v any) (*structpb.Value, error) {
	x := take(&b.vals)
	switch v := v.(type) {
	case string:
		if !utf8.ValidString(v) {
			return structpb.NewValue(v) // its error
		}
		k := take(&b.strs)
		k.StringValue = v
		x.Kind = k
	case int64:
		k := take(&b.nums)
		k.NumberValue = float64(v)
		x.Kind = k
	case float64:
		k := take(&b.nums)
		k.NumberValue = v
		x.Kind = k
	case bool:
		k := take(&b.bools)
		k.BoolValue = v
		x.Kind = k
	case map[string]any:
		s, err := b.newStruct(v)
		if err != nil {
			return nil, err
		}
		k := take(&b.structs)
		k.StructValue = s
		x.Kind = k
	case []any:
		l := &structpb.ListValue{Values: make([]*structpb.Value, len(v))}
		for i, e := range v {
			var err error
			if l.Values[i], err = b.newValue(e); err != nil {
				return nil, err
			}
		}
		k := take(&b.lists)
		k.ListValue = l
		x.Kind = k
	default:
		return structpb.NewValue(v)
	}
	return x, nil
}
