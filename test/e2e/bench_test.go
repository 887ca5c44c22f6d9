//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// benchClaims is how many claims the scale benchmark applies at once.
const benchClaims = 200

// BenchmarkApply200Claims applies 200 claims at once and reports the time
// until every one has its VM and snippet, and the function process's peak
// resident memory meanwhile. The figures are printed (make bench), never
// asserted: they depend on the machine.
func BenchmarkApply200Claims(b *testing.B) {
	cp := stack(b)
	for i := 0; i < b.N; i++ {
		ns := newNamespace(b, cp, "bench")
		claims := make([]*unstructured.Unstructured, benchClaims)
		for j := range claims {
			c := exampleClaim(b, "docker01", ns)
			name := fmt.Sprintf("bench%03d", j)
			c.SetName(name)
			_ = unstructured.SetNestedField(c.Object, name, "spec", "hostname")
			claims[j] = c
		}
		if err := cp.Function.ResetPeakRSS(); err != nil {
			b.Fatal(err)
		}

		b.ResetTimer()
		start := time.Now()
		applyAll(b, cp.Apply, claims)
		applied := time.Since(start)
		waitWithin(b, 10*time.Minute, fmt.Sprintf("%d claims to compose", benchClaims), func(ctx context.Context) (bool, string, error) {
			vms, err := composedOf(ctx, cp, gvkVM, ns, "")
			if err != nil {
				return false, "", err
			}
			files, err := composedOf(ctx, cp, gvkFile, ns, "")
			if err != nil {
				return false, "", err
			}
			return len(vms) == benchClaims && len(files) == benchClaims, fmt.Sprintf("%d VMs, %d snippets", len(vms), len(files)), nil
		})
		composed := time.Since(start)
		b.StopTimer()

		peak, err := cp.Function.PeakRSS()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(applied.Seconds(), "s-to-apply")
		b.ReportMetric(composed.Seconds(), "s-to-compose-all")
		b.ReportMetric(float64(peak)/(1<<20), "MiB-function-peak-RSS")
		b.Logf("%d claims: applied in %s, all composed after %s; function peak RSS %.1f MiB",
			benchClaims, applied.Round(time.Millisecond), composed.Round(time.Millisecond), float64(peak)/(1<<20))
	}
}

// applyAll applies the objects from a few goroutines at once, as a GitOps
// controller syncing a folder of claims would.
func applyAll(b *testing.B, apply func(context.Context, *unstructured.Unstructured) error, objs []*unstructured.Unstructured) {
	b.Helper()
	work := make(chan *unstructured.Unstructured)
	errs := make(chan error, len(objs))
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				if err := apply(context.Background(), o); err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, o := range objs {
		work <- o
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
