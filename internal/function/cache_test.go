package function

import (
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
)

// TestSameStruct: the input cache is only as right as this comparison, so
// every kind of difference must tell two inputs apart.
func TestSameStruct(t *testing.T) {
	base := map[string]any{
		"classes": map[string]any{"small": map[string]any{"cores": 1.0, "memoryMiB": 2048.0}},
		"images":  map[string]any{"nixos-26.05": map[string]any{"templateVmId": 9002.0}},
		"tags":    []any{"a", "b"},
		"onBoot":  true,
		"none":    nil,
	}
	mutate := func(f func(m map[string]any)) map[string]any {
		m := structOf(t, base).AsMap() // a deep copy
		f(m)
		return m
	}
	cases := map[string]struct {
		reason string
		other  map[string]any
		want   bool
	}{
		"Same":          {reason: "an equal copy is the same", other: mutate(func(map[string]any) {}), want: true},
		"Number":        {reason: "a class's cores changed", other: mutate(func(m map[string]any) { m["classes"].(map[string]any)["small"].(map[string]any)["cores"] = 2.0 })},
		"NumberString":  {reason: "a number and a string are not the same", other: mutate(func(m map[string]any) { m["classes"].(map[string]any)["small"].(map[string]any)["cores"] = "1" })},
		"MissingKey":    {reason: "a field was removed", other: mutate(func(m map[string]any) { delete(m, "onBoot") })},
		"RenamedKey":    {reason: "same count, another key", other: mutate(func(m map[string]any) { delete(m, "onBoot"); m["onboot"] = true })},
		"Bool":          {reason: "a flag changed", other: mutate(func(m map[string]any) { m["onBoot"] = false })},
		"ListLength":    {reason: "a list grew", other: mutate(func(m map[string]any) { m["tags"] = []any{"a", "b", "c"} })},
		"ListOrder":     {reason: "order matters in a list", other: mutate(func(m map[string]any) { m["tags"] = []any{"b", "a"} })},
		"NullVsMissing": {reason: "null is a value", other: mutate(func(m map[string]any) { m["none"] = "" })},
		"Nested": {reason: "a change deep in a map", other: mutate(func(m map[string]any) {
			m["images"].(map[string]any)["nixos-26.05"].(map[string]any)["templateVmId"] = 9003.0
		})},
	}
	a := structOf(t, base)
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := structOf(t, tc.other)
			if got := sameStruct(a, b); got != tc.want {
				t.Errorf("%s: sameStruct(a, b) = %v, want %v", tc.reason, got, tc.want)
			}
			if got := sameStruct(b, a); got != tc.want {
				t.Errorf("%s: sameStruct(b, a) = %v, want %v", tc.reason, got, tc.want)
			}
		})
	}
	if sameStruct(nil, a) || !sameStruct(nil, nil) {
		t.Error("nil is the same only as nil")
	}
}

func structOf(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
