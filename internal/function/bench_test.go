package function

import (
	"context"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// BenchmarkRunFunction renders one Machine with the function in-process:
// decode input and XR, validate, render user-data, compose, encode. The goal
// is under 100 µs per op; go test -bench prints it, no test asserts it.
func BenchmarkRunFunction(b *testing.B) {
	claims, input := exampleClaims(b)
	xr := repo.XRFor(claims["dns01"])
	req, err := NewRequest(xr, input, held(b, xr, map[string]map[string]any{"vm": observedVM("dns01")}), Offline())
	if err != nil {
		b.Fatal(err)
	}
	f := &Function{}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := testenv.CPUTime()
	defer func() { testenv.ReportCPU(b, cpu) }()
	for i := 0; i < b.N; i++ {
		rsp, err := f.RunFunction(context.Background(), req)
		if err != nil || !Composed(rsp) {
			b.Fatalf("want the VM composed, got %v (%v)", rsp.GetDesired().GetResources(), err)
		}
	}
}
