package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/function"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// BenchmarkReconcileOverGRPC is the function's cost per reconcile (its two
// calls: the first returns what it requires, the second composes) against
// the floor's, a function that does nothing, in a fleet of N other
// machines: the same requests to both servers, one reconcile at a time,
// alternating between them so that the machine's load falls on both alike.
// It reports the median latency of a reconcile and the server's CPU per
// reconcile of each, and their ratios (x-floor). Figures are printed (make
// bench), never asserted: they depend on the machine.
func BenchmarkReconcileOverGRPC(b *testing.B) {
	certs, creds := benchPKI(b)
	fn := startServer(b, "machine", certs, creds)
	fl := startServer(b, "floor", certs, creds)
	input := benchInput(b)
	for _, n := range []int{0, 1000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			f := newFleet(input)
			for i := 0; i < n; i++ {
				f.hold(b, benchXR(b, i))
			}
			m := &benchMachine{xr: benchXR(b, -1)}
			reqs := f.converge(b, fn.call, m)
			ctx := context.Background()
			// One reconcile of each to warm both up.
			for _, s := range []*benchServer{fn, fl} {
				for _, req := range reqs {
					if _, err := s.call(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
			}
			lat := map[*benchServer][]time.Duration{}
			cpu := map[*benchServer]time.Duration{}
			b.ResetTimer()
			for _, s := range []*benchServer{fn, fl} {
				cpu[s] = -s.cpu(b)
			}
			for i := 0; i < b.N; i++ {
				order := []*benchServer{fn, fl}
				if i%2 == 1 {
					order[0], order[1] = fl, fn
				}
				for _, s := range order {
					start := time.Now()
					for _, req := range reqs {
						if _, err := s.call(ctx, req); err != nil {
							b.Fatal(err)
						}
					}
					lat[s] = append(lat[s], time.Since(start))
				}
			}
			for _, s := range []*benchServer{fn, fl} {
				cpu[s] += s.cpu(b)
			}
			b.StopTimer()
			med := func(d []time.Duration) float64 {
				sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
				return float64(d[len(d)/2])
			}
			perRec := func(s *benchServer) float64 { return float64(cpu[s]) / float64(b.N) }
			b.ReportMetric(med(lat[fn])/1e3, "fn-µs/reconcile")
			b.ReportMetric(med(lat[fl])/1e3, "floor-µs/reconcile")
			b.ReportMetric(med(lat[fn])/med(lat[fl]), "latency-x-floor")
			b.ReportMetric(perRec(fn)/1e3, "fn-cpu-µs/reconcile")
			b.ReportMetric(perRec(fl)/1e3, "floor-cpu-µs/reconcile")
			b.ReportMetric(perRec(fn)/perRec(fl), "cpu-x-floor")
			b.ReportMetric(float64(proto.Size(reqs[0])+proto.Size(reqs[1])), "request-bytes/reconcile")
		})
	}
}

// Crossplane's default: --max-reconcile-rate 100, the XR controllers' workers.
const (
	benchClaims      = 200
	benchConcurrency = 100
	// benchPasses is how often each claim is reconciled: until its VM runs
	// (about five), then at polls.
	benchPasses = 7
)

// BenchmarkPeakRSS200Claims is the function's memory under Crossplane's
// load when 200 claims are applied at once: 100 reconciles in flight, each
// its two calls, every claim reconciled until its VM runs and then at
// polls. It reports the peak resident memory of the function's process (a
// fresh one per run; and its peak once started, before the load), its CPU
// per call, and the most calls the client had
// in flight at once; as deployed (bounded: function.InFlight and the
// memory limit at their defaults) and with both bounds off. Figures are
// printed, never asserted.
func BenchmarkPeakRSS200Claims(b *testing.B) {
	certs, creds := benchPKI(b)
	input := benchInput(b)
	machines := make([]*benchMachine, benchClaims)
	for i := range machines {
		machines[i] = &benchMachine{xr: benchXR(b, i)}
	}
	for _, bc := range []struct {
		name  string
		flags []string
	}{
		{"bounded", nil},
		{"unbounded", []string{"--max-concurrent-calls=1000000", "--memory-limit-mib=0"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var peak, start int64
			var calls, most int
			var cpu time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				fn := startServer(b, "machine", certs, creds, bc.flags...)
				f := newFleet(input)
				queue := make(chan *benchMachine, benchClaims)
				passes := map[*benchMachine]int{}
				for _, m := range machines {
					queue <- &benchMachine{xr: m.xr}
				}
				// Wait for the server before the clock starts.
				if _, err := fn.call(context.Background(), &fnv1.RunFunctionRequest{}); err != nil {
					b.Fatal(err)
				}
				cpu0 := fn.cpu(b)
				start = max(start, fn.peakRSS(b))
				var (
					mu       sync.Mutex
					wg       sync.WaitGroup
					left     = benchClaims
					firstErr error
					inFlight int
				)
				call := func(ctx context.Context, req *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error) {
					mu.Lock()
					inFlight++
					most = max(most, inFlight)
					mu.Unlock()
					defer func() {
						mu.Lock()
						inFlight--
						mu.Unlock()
					}()
					return fn.call(ctx, req)
				}
				b.StartTimer()
				done := make(chan struct{})
				for w := 0; w < benchConcurrency; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							var m *benchMachine
							select {
							case m = <-queue:
							case <-done:
								return
							}
							_, _, err := f.reconcile(context.Background(), call, m)
							mu.Lock()
							calls += 2
							passes[m]++
							if err != nil && firstErr == nil {
								firstErr = err
							}
							again := err == nil && passes[m] < benchPasses
							if !again {
								left--
								if left == 0 {
									close(done)
								}
							}
							mu.Unlock()
							if again {
								queue <- m
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				if firstErr != nil {
					b.Fatal(firstErr)
				}
				cpu += fn.cpu(b) - cpu0
				if p := fn.peakRSS(b); p > peak {
					peak = p
				}
				fn.stop()
				b.StartTimer()
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
			b.ReportMetric(float64(start)/(1<<20), "started-RSS-MiB")
			b.ReportMetric(float64(cpu)/float64(calls)/1e3, "fn-cpu-µs/call")
			b.ReportMetric(float64(most), "most-calls-in-flight")
		})
	}
}

// BenchmarkReconcileInProcess is BenchmarkReconcileOverGRPC's reconcile of a
// running machine without gRPC: the function's own CPU and allocations per
// call (each op is one call; the two calls of a reconcile alternate).
func BenchmarkReconcileInProcess(b *testing.B) {
	fn := &function.Function{}
	call := func(ctx context.Context, req *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error) {
		return fn.RunFunction(ctx, req)
	}
	f := newFleet(benchInput(b))
	reqs := f.converge(b, call, &benchMachine{xr: benchXR(b, -1)})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := testenv.CPUTime()
	for i := 0; i < b.N; i++ {
		if _, err := fn.RunFunction(ctx, reqs[i%2]); err != nil {
			b.Fatal(err)
		}
	}
	testenv.ReportCPU(b, cpu)
}
