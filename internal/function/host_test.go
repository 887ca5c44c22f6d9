package function

import (
	"context"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/runningstate"
)

// TestCachedHostFollowsFlakeRef: the host kept with an XR's spec (validSpecs)
// is the one of its flake ref as it is now: a new ref names a new host in
// the running-state requirement, the old ref the old one again.
func TestCachedHostFollowsFlakeRef(t *testing.T) {
	claims, input := exampleClaims(t)
	f := &Function{}
	host := func(ref string) string {
		t.Helper()
		xr := repo.XRFor(claims["dns01"])
		xr["metadata"].(map[string]any)["uid"] = "uid-host"
		spec := map[string]any{}
		for k, v := range xr["spec"].(map[string]any) {
			spec[k] = v
		}
		if ref != "" {
			spec["nix"] = map[string]any{"flakeRef": ref}
		}
		xr["spec"] = spec
		req, err := NewRequest(xr, input, nil, Offline())
		if err != nil {
			t.Fatal(err)
		}
		rsp, err := f.RunFunction(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return rsp.GetRequirements().GetResources()[RunningStateRequirement].GetMatchName()
	}
	first := host("")
	for _, tc := range []struct{ ref, want string }{
		{"", first},
		{"git+https://git.lab.home.arpa/homelab-infra?ref=main#dns09", runningstate.Name("dns09")},
		{"git+https://git.lab.home.arpa/homelab-infra?ref=main#dns09", runningstate.Name("dns09")},
		{"", first},
	} {
		if got := host(tc.ref); got != tc.want {
			t.Errorf("flake ref %q: running state %q, want %q", tc.ref, got, tc.want)
		}
	}
	if first != runningstate.Name("dns01") {
		t.Errorf("dns01's running state: %q, want %q", first, runningstate.Name("dns01"))
	}
}
