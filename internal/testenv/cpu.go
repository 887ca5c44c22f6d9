package testenv

import (
	"syscall"
	"testing"
	"time"
)

// ReportCPU adds a cpu-ns/op metric to a benchmark: the process's CPU time
// (user + system) per op, measured from start. On a shared, loaded machine
// wall time per op swings with the load; CPU time says what the code costs.
// Call it at the end of the benchmark with the CPU time taken after
// b.ResetTimer.
func ReportCPU(b *testing.B, start time.Duration) {
	b.Helper()
	b.ReportMetric(float64(CPUTime()-start)/float64(b.N), "cpu-ns/op")
}

// CPUTime is the CPU time this process has used so far.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
