// state.go: each machine's running state, desired against running: what a
// rollout asks of it (its deploy ref), what it runs, its verdict, a pending
// reboot and its last failure. Read from Git and Prometheus only; `labctl
// rollout status` prints it ("which machines lag, and why").

package rollout

import (
	"context"
	"slices"
)

// MachineState is one machine's desired and running state.
type MachineState struct {
	Host string `json:"host"`
	// Desired is the commit its deploy ref asks for ("" without one).
	Desired string `json:"desired,omitempty"`
	// Running is the commit it applied (nix_gitops_applied_info).
	Running string `json:"running,omitempty"`
	// Verdict is its verdict on the commit it follows ("" when Prometheus
	// has none: the agent is not running or not scraped).
	Verdict       string `json:"verdict,omitempty"`
	PendingReboot bool   `json:"pendingReboot,omitempty"`
	// LastFailure is the stage of its last failed run ("" after a success).
	LastFailure string `json:"lastFailure,omitempty"`
	// Stale: the agent has not looked at Git within staleAfter.
	Stale bool `json:"stale,omitempty"`
	// Converged: running what its ref asks for, healthy and fresh.
	Converged bool `json:"converged"`
}

// States reads the machines' states: three Prometheus queries, whatever
// the number of machines.
func (d *Driver) States(ctx context.Context, p Plan, hosts []string) ([]MachineState, error) {
	refs, err := d.Git.Refs(ctx, "deploy")
	if err != nil {
		return nil, err
	}
	vs, err := d.Verdicts.Verdicts(ctx, hosts)
	if err != nil {
		return nil, err
	}
	extra, err := d.Verdicts.Running(ctx, hosts)
	if err != nil {
		return nil, err
	}
	var out []MachineState
	for _, h := range slices.Sorted(slices.Values(hosts)) {
		v, r := vs[h], extra[h]
		s := MachineState{Host: h, Desired: refs[h], Running: r.Commit, Verdict: v.State, LastFailure: r.FailedStage,
			PendingReboot: v.State == "pending-reboot", Stale: v.State != "" && v.Age > p.Policy.StaleAfter.D()}
		s.Converged = v.State == "converged" && !s.Stale && s.Running != "" && (s.Desired == "" || s.Desired == s.Running)
		out = append(out, s)
	}
	return out, nil
}
