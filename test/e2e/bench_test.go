//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// benchClaims is how many claims the scale benchmark applies at once.
const benchClaims = 200

// BenchmarkApply200Claims applies 200 claims at once and reports the time
// until the function has composed every snippet (its share), until the
// real provider has created all 200 VMs in the simulator, the CPU the
// function and the provider (with its terraform and bpg children) used
// meanwhile, and the function's peak resident memory. The figures are
// printed (make bench), never asserted: they depend on the machine.
func BenchmarkApply200Claims(b *testing.B) {
	cp, n := stackWithNode(b)
	for i := 0; i < b.N; i++ {
		ns := newNamespace(b, cp, "bench")
		claims := make([]*unstructured.Unstructured, benchClaims)
		for j := range claims {
			c := exampleClaim(b, "docker01", ns)
			name := fmt.Sprintf("bench%03d", j)
			c.SetName(name)
			_ = unstructured.SetNestedField(c.Object, name, "spec", "hostname")
			_ = unstructured.SetNestedField(c.Object, int64(3000+j), "spec", "proxmox", "vmId")
			claims[j] = c
		}
		if err := cp.Function.ResetPeakRSS(); err != nil {
			b.Fatal(err)
		}
		fnCPU0, _ := cpuSeconds(cp.Function.Pid())
		pvCPU0, _ := cpuSeconds(cp.Provider.Pid())

		b.ResetTimer()
		start := time.Now()
		applyAll(b, cp.Apply, claims)
		applied := time.Since(start)
		waitWithin(b, 10*time.Minute, fmt.Sprintf("%d snippets to be composed", benchClaims), func(ctx context.Context) (bool, string, error) {
			files, err := composedOf(ctx, cp, gvkFile, ns, "")
			return len(files) == benchClaims, fmt.Sprintf("%d snippets", len(files)), err
		})
		composed := time.Since(start)
		fnCPU1, _ := cpuSeconds(cp.Function.Pid())
		waitWithin(b, 90*time.Minute, fmt.Sprintf("%d VMs in Proxmox", benchClaims), func(context.Context) (bool, string, error) {
			c := 0
			for _, id := range n.Sim.VMIDs() {
				if id >= 3000 && id < 3000+benchClaims {
					c++
				}
			}
			return c == benchClaims, fmt.Sprintf("%d VMs", c), nil
		})
		created := time.Since(start)
		b.StopTimer()
		fnCPU2, _ := cpuSeconds(cp.Function.Pid())
		pvCPU, _ := cpuSeconds(cp.Provider.Pid())

		peak, err := cp.Function.PeakRSS()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(applied.Seconds(), "s-to-apply")
		b.ReportMetric(composed.Seconds(), "s-to-compose-snippets")
		b.ReportMetric(created.Seconds(), "s-to-create-all-VMs")
		b.ReportMetric(fnCPU2-fnCPU0, "s-function-CPU")
		b.ReportMetric(pvCPU-pvCPU0, "s-provider-CPU")
		b.ReportMetric(float64(peak)/(1<<20), "MiB-function-peak-RSS")
		b.Logf("%d claims: applied in %s, snippets composed after %s (function CPU %.1f s), all VMs created in Proxmox after %s; CPU: function %.1f s, provider with terraform and bpg %.1f s; function peak RSS %.1f MiB",
			benchClaims, applied.Round(time.Millisecond), composed.Round(time.Millisecond), fnCPU1-fnCPU0, created.Round(time.Second),
			fnCPU2-fnCPU0, pvCPU-pvCPU0, float64(peak)/(1<<20))
	}
}

// cpuSeconds is a process's user and system CPU time, its waited-for
// children's included (/proc/<pid>/stat fields 14 to 17).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	var ticks float64
	for _, f := range fields[11:15] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return 0, err
		}
		ticks += v
	}
	return ticks / 100, nil // USER_HZ is 100 on Linux
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
