package rollout

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/runningstate"
)

// TestPublishedStates: what labctl rollout publish-state writes. Every
// machine Prometheus has, its ref's commit desired; one it no longer has
// keeps its last known state, stale; an old verdict is stale.
func TestPublishedStates(t *testing.T) {
	const c1, c2 = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	vs := map[string]Verdict{
		"w1": {Host: "w1", Commit: c2, State: "converged", Age: 5 * time.Second},
		"w2": {Host: "w2", Commit: c2, State: "rolled-back", Age: 5 * time.Second},
		"w3": {Host: "w3", Commit: c1, State: "converged", Age: time.Hour},
	}
	runs := map[string]Run{"w1": {Commit: c2}, "w2": {Commit: c1, FailedStage: "health"}, "w3": {Commit: c1}}
	last := []runningstate.State{
		{Host: "w2", Desired: c1, Running: c1, Verdict: "converged", Converged: true},
		{Host: "w4", Desired: c1, Running: c1, Verdict: "converged", Converged: true},
	}
	want := map[string]runningstate.State{
		"w1": {Host: "w1", Desired: c2, Running: c2, Verdict: "converged", Converged: true},
		"w2": {Host: "w2", Desired: c2, Running: c1, Verdict: "rolled-back", LastFailure: "health"},
		"w3": {Host: "w3", Desired: c1, Running: c1, Verdict: "converged", Stale: true},
		"w4": {Host: "w4", Desired: c1, Running: c1, Verdict: "converged", Stale: true},
	}
	if diff := cmp.Diff(want, publishedStates(vs, runs, last, 15*time.Minute)); diff != "" {
		t.Errorf("published states (-want, +got):\n%s", diff)
	}
}
