package function

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/repo"
)

// TestSpecCacheNeverStale: an XR's spec is decoded and validated once, and
// again whenever it or the input changes: an edit of the claim, a spec made
// invalid, a class taken out of the input all show in the next call, as
// they would without the cache.
func TestSpecCacheNeverStale(t *testing.T) {
	claims, input := exampleClaims(t)
	f := &Function{}
	call := func(edit func(spec map[string]any), in []byte) string {
		t.Helper()
		xr := repo.XRFor(claims["dns01"])
		xr["metadata"].(map[string]any)["uid"] = "uid-cache"
		spec := map[string]any{}
		for k, v := range xr["spec"].(map[string]any) {
			spec[k] = v
		}
		if edit != nil {
			edit(spec)
		}
		xr["spec"] = spec
		req, err := NewRequest(xr, in, nil, Offline())
		if err != nil {
			t.Fatal(err)
		}
		rsp, err := f.RunFunction(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(desiredNames(rsp), " ") + " | " + fatals(rsp)
	}
	first := call(nil, input)
	if again := call(nil, input); again != first || !strings.Contains(first, "machine-hostname-dns01") {
		t.Fatalf("the same spec twice: want the same response with dns01's identities, got %q then %q", first, again)
	}
	if got := call(func(s map[string]any) { s["hostname"] = "dns02" }, input); !strings.Contains(got, "machine-hostname-dns02") {
		t.Errorf("after the host name was edited: want dns02's identity, got %q", got)
	}
	if got := call(func(s map[string]any) { s["hostname"] = "Not_A_Label" }, input); !strings.Contains(got, "spec.hostname") {
		t.Errorf("after the host name was made invalid: want it refused, got %q", got)
	}
	if got := call(nil, input); got != first {
		t.Errorf("back to the first spec: want %q, got %q", first, got)
	}
	var in map[string]any
	if err := json.Unmarshal(input, &in); err != nil {
		t.Fatal(err)
	}
	delete(in["classes"].(map[string]any), "small")
	noSmall, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := call(nil, noSmall); !strings.Contains(got, "spec.class") {
		t.Errorf("after the input lost the claim's class: want it refused, got %q", got)
	}
}
