package compose

import (
	"math"
	"math/rand"
	"testing"
)

// TestSameAsJSON: same, which walks the values, agrees with comparing their
// JSON forms (sameJSON, what it replaced) on values of every kind the
// composer and the cluster give, and on the edge cases of their encoding.
func TestSameAsJSON(t *testing.T) {
	pairs := [][2]any{
		{int64(2), float64(2)},
		{int64(2), float64(2.5)},
		{int64(1) << 60, float64(1 << 60)},
		{int64(1)<<60 + 1, float64(1 << 60)},
		{math.Copysign(0, -1), int64(0)},
		{nil, []any(nil)},
		{nil, map[string]any(nil)},
		{[]any{}, []any(nil)},
		{map[string]any{}, nil},
		{"a", "a"},
		{"a", "b"},
		{true, "true"},
		{[]any{int64(1), "x"}, []any{float64(1), "x"}},
		{[]any{int64(1)}, []any{float64(1), "x"}},
		{map[string]any{"a": int64(1)}, map[string]any{"a": float64(1)}},
		{map[string]any{"a": nil}, map[string]any{}},
		{map[string]any{"a": []any{"10.0.0.1"}}, map[string]any{"a": []any{"10.0.0.1"}}},
		{math.NaN(), math.NaN()},
		{"\xff", "\xfe"},
		{1, int64(1)},
		{map[string]any{"a": 1}, map[string]any{"a": float64(1)}},
	}
	for _, p := range pairs {
		if got, want := same(p[0], p[1]), sameJSON(p[0], p[1]); got != want {
			t.Errorf("same(%#v, %#v) = %v; comparing their JSON says %v", p[0], p[1], got, want)
		}
	}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 20000; i++ {
		a := randomValue(r, 3)
		b := a
		if r.Intn(2) == 0 {
			b = randomValue(r, 3)
		} else {
			b = mutate(r, a)
		}
		if got, want := same(a, b), sameJSON(a, b); got != want {
			t.Fatalf("same(%#v, %#v) = %v; comparing their JSON says %v", a, b, got, want)
		}
	}
}

func randomValue(r *rand.Rand, depth int) any {
	n := 7
	if depth == 0 {
		n = 5
	}
	switch r.Intn(n) {
	case 0:
		return nil
	case 1:
		return r.Intn(2) == 0
	case 2:
		return []string{"a", "b", "", "local-lvm"}[r.Intn(4)]
	case 3:
		return int64(r.Intn(3))
	case 4:
		return float64(r.Intn(3)) / float64(1+r.Intn(2))
	case 5:
		l := make([]any, r.Intn(3))
		for i := range l {
			l[i] = randomValue(r, depth-1)
		}
		if len(l) == 0 && r.Intn(2) == 0 {
			return []any(nil)
		}
		return l
	default:
		m := map[string]any{}
		for i := r.Intn(3); i > 0; i-- {
			m[[]string{"a", "b", "c"}[r.Intn(3)]] = randomValue(r, depth-1)
		}
		return m
	}
}

// mutate is v with its numbers' Go type swapped, and sometimes one value
// changed.
func mutate(r *rand.Rand, v any) any {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case float64:
		if x == math.Trunc(x) && r.Intn(2) == 0 {
			return int64(x)
		}
		return x
	case []any:
		if x == nil {
			return x
		}
		out := make([]any, len(x))
		for i := range x {
			out[i] = mutate(r, x[i])
		}
		if len(out) > 0 && r.Intn(4) == 0 {
			out[r.Intn(len(out))] = randomValue(r, 1)
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = mutate(r, e)
		}
		if r.Intn(4) == 0 {
			out["a"] = randomValue(r, 1)
		}
		return out
	}
	return v
}
