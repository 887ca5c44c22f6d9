// state.go: each machine's running state, desired against running
// (internal/runningstate): what a rollout asks of it (its deploy ref), what
// it runs, its verdict, a pending reboot and its last failure. Read from Git
// and Prometheus only; `labctl rollout status` prints it ("which machines
// lag, and why").

package rollout

import (
	"context"
	"slices"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/runningstate"
)

// States reads the machines' states: their deploy refs from Git, the rest
// in three Prometheus queries, whatever the number of machines.
func (d *Driver) States(ctx context.Context, p Plan, hosts []string) ([]runningstate.State, error) {
	refs, err := d.Git.Refs(ctx, "deploy")
	if err != nil {
		return nil, err
	}
	vs, err := d.Verdicts.Verdicts(ctx, hosts)
	if err != nil {
		return nil, err
	}
	runs, err := d.Verdicts.Running(ctx, hosts)
	if err != nil {
		return nil, err
	}
	var out []runningstate.State
	for _, h := range slices.Sorted(slices.Values(hosts)) {
		out = append(out, stateOf(h, refs[h], vs[h], runs[h], p.Policy.StaleAfter.D()))
	}
	return out, nil
}

// stateOf is one machine's state from its desired commit ("": unknown), its
// verdict and its run as Prometheus holds them.
func stateOf(host, desired string, v Verdict, r Run, staleAfter time.Duration) runningstate.State {
	s := runningstate.State{Host: host, Desired: desired, Running: r.Commit, Verdict: v.State, LastFailure: r.FailedStage,
		Stale: v.State != "" && v.Age > staleAfter}
	s.Judge()
	return s
}
