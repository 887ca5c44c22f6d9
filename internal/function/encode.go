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
	objs    []structpb.Struct
	lvs     []structpb.ListValue
	elems   []*structpb.Value

	// invalid is set when a string given to str is not valid UTF-8, which
	// structpb refuses (composed.go).
	invalid bool
}

// Chunk sizes, in elements: about what a call that composes a machine
// needs of each (133 Values, 69 strings, 36 Structs, 31 objects, 18 lists,
// 9 numbers, 6 bools), each a size class of the allocator, so that a call
// neither wastes most of a last chunk nor takes a third one.
const (
	valsChunk    = 73 // 56-byte Values: 4 KiB
	strsChunk    = 40 // 640 B
	numsChunk    = 16
	boolsChunk   = 8
	structsChunk = 32
	listsChunk   = 24
	objsChunk    = 21 // 48-byte Structs: 1 KiB
	lvsChunk     = 12 // 64-byte ListValues: 768 B
)

// take returns the next element of *s, a new chunk of n when it is used
// up.
func take[T any](s *[]T, n int) *T {
	if len(*s) == 0 {
		*s = make([]T, n)
	}
	e := &(*s)[0]
	*s = (*s)[1:]
	return e
}

// newStruct is structpb.NewStruct(m).
func (b *structBuilder) newStruct(m map[string]any) (*structpb.Struct, error) {
	return b.buildStruct(m)
}

func (b *structBuilder) buildStruct(m map[string]any) (*structpb.Struct, error) {
	x := b.obj(len(m))
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
	switch v := v.(type) {
	case string:
		if !utf8.ValidString(v) {
			return structpb.NewValue(v) // its error
		}
		return b.str(v), nil
	case int64:
		return b.num(float64(v)), nil
	case float64:
		return b.num(v), nil
	case bool:
		return b.boolean(v), nil
	case map[string]any:
		s, err := b.buildStruct(v)
		if err != nil {
			return nil, err
		}
		return b.structValue(s), nil
	case []any:
		l := b.listOf(len(v))
		for i, e := range v {
			var err error
			if l.Values[i], err = b.newValue(e); err != nil {
				return nil, err
			}
		}
		return b.listValue(l), nil
	default:
		return structpb.NewValue(v)
	}
}

// obj is a new Struct for n fields.
func (b *structBuilder) obj(n int) *structpb.Struct {
	x := take(&b.objs, objsChunk)
	x.Fields = make(map[string]*structpb.Value, n)
	return x
}

// listOf is a new ListValue of n Values, to be set. The Values slice has
// no room beyond n: an append copies it instead of writing over the chunk's
// next list.
func (b *structBuilder) listOf(n int) *structpb.ListValue {
	l := take(&b.lvs, lvsChunk)
	if n == 0 {
		l.Values = []*structpb.Value{}
		return l
	}
	if len(b.elems) < n {
		b.elems = make([]*structpb.Value, max(n, 32))
	}
	l.Values = b.elems[:n:n]
	b.elems = b.elems[n:]
	return l
}

// The Values of the kinds the composer writes (composed.go), as
// structpb.NewValue makes them from a string, an int64 or float64, a bool,
// a map[string]any and a []any.

func (b *structBuilder) str(s string) *structpb.Value {
	if !utf8.ValidString(s) {
		b.invalid = true
	}
	x, k := take(&b.vals, valsChunk), take(&b.strs, strsChunk)
	k.StringValue = s
	x.Kind = k
	return x
}

func (b *structBuilder) num(n float64) *structpb.Value {
	x, k := take(&b.vals, valsChunk), take(&b.nums, numsChunk)
	k.NumberValue = n
	x.Kind = k
	return x
}

func (b *structBuilder) boolean(v bool) *structpb.Value {
	x, k := take(&b.vals, valsChunk), take(&b.bools, boolsChunk)
	k.BoolValue = v
	x.Kind = k
	return x
}

func (b *structBuilder) structValue(s *structpb.Struct) *structpb.Value {
	x, k := take(&b.vals, valsChunk), take(&b.structs, structsChunk)
	k.StructValue = s
	x.Kind = k
	return x
}

func (b *structBuilder) list(vs ...*structpb.Value) *structpb.Value {
	l := b.listOf(len(vs))
	copy(l.Values, vs)
	return b.listValue(l)
}

func (b *structBuilder) listValue(l *structpb.ListValue) *structpb.Value {
	x, k := take(&b.vals, valsChunk), take(&b.lists, listsChunk)
	k.ListValue = l
	x.Kind = k
	return x
}
