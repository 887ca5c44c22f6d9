//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/test/harness"
)

// benchClaims is how many claims the scale benchmark applies at once.
const benchClaims = 200

// BenchmarkApply200Claims applies 200 claims at once and reports the time
// until the function has composed every snippet (its share), until the
// real provider has created all 200 VMs in the simulator, the CPU the
// function and the provider (with its terraform and bpg children) used
// meanwhile, and the function's peak resident memory. The figures are
// printed (make bench), never asserted: they depend on the machine.
//
// Its stack is its own, and its provider runs with its own default
// --max-reconcile-rate, as the package installs it: the shared stack's
// lower rate suits many tests on a small machine, and it would set the
// pace here (a reconcile rate, not CPU, bounds a burst of creates).
func BenchmarkApply200Claims(b *testing.B) {
	n := ownNode(b, nil)
	cp := startOwnStack(b, n, filepath.Join(b.TempDir(), "stack"), func(c *harness.Config) { c.Provider.MaxReconcileRate = -1 })
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
		if err := cp.Provider.ResetPeakRSS(); err != nil {
			b.Fatal(err)
		}
		fnCPU0, _ := cpuSeconds(cp.Function.Pid())
		pvCPU0, _ := cpuSeconds(cp.Provider.Pid())
		treePeak := sampleTreeRSS(cp.Provider.Pid())

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
		pvPeak, err := cp.Provider.PeakRSS()
		if err != nil {
			b.Fatal(err)
		}
		pvPeak = max(pvPeak, treePeak())
		b.ReportMetric(applied.Seconds(), "s-to-apply")
		b.ReportMetric(composed.Seconds(), "s-to-compose-snippets")
		b.ReportMetric(created.Seconds(), "s-to-create-all-VMs")
		b.ReportMetric(fnCPU2-fnCPU0, "s-function-CPU")
		b.ReportMetric(pvCPU-pvCPU0, "s-provider-CPU")
		b.ReportMetric(float64(peak)/(1<<20), "MiB-function-peak-RSS")
		b.ReportMetric(float64(pvPeak)/(1<<20), "MiB-provider-peak-RSS")
		b.Logf("%d claims: applied in %s, snippets composed after %s (function CPU %.1f s), all VMs created in Proxmox after %s; CPU: function %.1f s, provider %.1f s; peak RSS: function %.1f MiB, provider %.1f MiB",
			benchClaims, applied.Round(time.Millisecond), composed.Round(time.Millisecond), fnCPU1-fnCPU0, created.Round(time.Second),
			fnCPU2-fnCPU0, pvCPU-pvCPU0, float64(peak)/(1<<20), float64(pvPeak)/(1<<20))
	}
}

// sampleTreeRSS samples, every 200 ms until the returned function is
// called, the summed resident memory of pid and every process below it
// (a provider that forks terraform and plugins counts them too), and
// returns the peak in bytes.
func sampleTreeRSS(pid int) func() int64 {
	stop := make(chan struct{})
	done := make(chan int64)
	go func() {
		var peak int64
		for {
			peak = max(peak, treeRSS(pid))
			select {
			case <-stop:
				done <- peak
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() int64 { close(stop); return <-done }
}

// treeRSS is the summed VmRSS of pid and its descendants, in bytes.
func treeRSS(pid int) int64 {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		if f := strings.Fields(s[strings.LastIndex(s, ")")+2:]); len(f) > 1 {
			parent[p], _ = strconv.Atoi(f[1])
		}
	}
	var sum int64
	for p := range parent {
		for q := p; q > 1; q = parent[q] {
			if q == pid {
				sum += statusKB(p, "VmRSS")
				break
			}
		}
	}
	return sum
}

// statusKB reads a "<key>: <n> kB" line of /proc/<pid>/status, in bytes.
func statusKB(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
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

// BenchmarkSteadyStatePoll is what one machine costs between changes: on a
// stack and node of its own, whose provider polls every 5 s, one Ready
// machine (a VirtualMachine and its File) is left alone for a minute, and
// the Proxmox API calls and the provider's CPU are divided by the VM's
// polls (each poll reads the VM's config once). Writes must be zero.
func BenchmarkSteadyStatePoll(b *testing.B) {
	root := testenv.RepoRoot(b)
	dir := b.TempDir()
	n, err := startNode(root, filepath.Join(dir, "node"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer n.Stop()
	const every = 5 * time.Second
	cp, err := startStack(b, n, dir, func(c *harness.Config) { c.Provider.Poll = every })
	if err != nil {
		b.Fatal(err)
	}
	defer cp.Stop()
	ns := newNamespace(b, cp, "steady")
	claim, id := machineClaim(b, "dns01", ns)
	if err := cp.Apply(ctxFor(b), claim); err != nil {
		b.Fatal(err)
	}
	waitClaimReady(b, cp, ns, claim.GetName())
	// Let the creation's own reconciles pass.
	time.Sleep(3 * every)
	config := fmt.Sprintf("/qemu/%d/config", id)
	for i := 0; i < b.N; i++ {
		from := len(n.Sim.Requests())
		cpu0, _ := cpuSeconds(cp.Provider.Pid())
		b.ResetTimer()
		time.Sleep(12 * every)
		b.StopTimer()
		cpu1, _ := cpuSeconds(cp.Provider.Pid())
		var calls, writes, polls int
		for _, r := range n.Sim.Requests()[from:] {
			calls++
			if r.Method != "GET" {
				writes++
			}
			if r.Method == "GET" && strings.HasSuffix(r.Path, config) {
				polls++
			}
		}
		if polls == 0 {
			b.Fatalf("the provider did not poll VM %d in %s", id, 12*every)
		}
		b.ReportMetric(float64(calls)/float64(polls), "API-calls/poll")
		b.ReportMetric(float64(writes), "writes")
		b.ReportMetric((cpu1-cpu0)/float64(polls)*1000, "provider-CPU-ms/poll")
		b.Logf("steady state: %d polls of VM %d in %s, %d API calls (%.1f a poll, %d writes), provider CPU %.0f ms a poll",
			polls, id, 12*every, calls, float64(calls)/float64(polls), writes, (cpu1-cpu0)/float64(polls)*1000)
	}
}
