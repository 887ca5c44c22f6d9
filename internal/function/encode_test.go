package function

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestStructBuilder: the builder makes the Struct structpb.NewStruct makes,
// or fails as it does, for values of every type NewStruct takes.
func TestStructBuilder(t *testing.T) {
	cases := map[string]map[string]any{
		"Empty":      {},
		"Scalars":    {"s": "x", "i": int64(-3), "f": 2.5, "b": true, "n": nil, "nan": math.NaN(), "big": int64(1)<<60 + 1},
		"Nested":     {"spec": map[string]any{"forProvider": map[string]any{"clone": []any{map[string]any{"vmId": int64(9002), "full": true}}, "tags": []any{}, "x": []any{nil, "a", 1.5}}}},
		"OtherTypes": {"int": 7, "u8": uint8(3), "f32": float32(1.5), "num": json.Number("12"), "bytes": []byte("hi"), "nilmap": map[string]any(nil), "nillist": []any(nil)},
		"BadNumber":  {"num": json.Number("x")},
		"BadString":  {"s": map[string]any{"t": []any{"ok", "\xff"}}},
		"BadKey":     {"a": map[string]any{"\xfe": int64(1)}},
		"BadType":    {"a": []any{struct{}{}}},
		"ManyValues": func() map[string]any {
			m := map[string]any{}
			for i := 0; i < 300; i++ {
				m[fmt.Sprint(i)] = []any{fmt.Sprint(i), int64(i), i%2 == 0, map[string]any{"x": float64(i)}}
			}
			return m
		}(),
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			want, wantErr := structpb.NewStruct(m)
			var b structBuilder
			got, err := b.newStruct(m)
			if fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("error %v; structpb.NewStruct's %v", err, wantErr)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform(), cmpopts.EquateNaNs()); diff != "" {
				t.Errorf("Struct (-structpb.NewStruct, +builder):\n%s", diff)
			}
		})
	}
}
