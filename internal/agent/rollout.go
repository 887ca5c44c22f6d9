// rollout.go: rollout mode (design D13). The machine follows its own ref,
// deploy/<host>, which the rollout driver fast-forwards to reviewed commits
// on the branch; reboot/<host> approves a reboot into a commit (or its
// ancestors). Git stays the only way in: the driver moves refs, the machine
// pulls, and its verdict goes out as a metric (state.Verdict).

package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// RebootRef is where the clone keeps the reboot ref when an approval names
// a descendant of the pending commit.
const rebootRef = "refs/nix-gitops/reboot"

// errWaitingForRef ends a run in rollout mode whose deploy ref does not
// exist after the machine has applied a commit: it waits for the driver,
// and never falls back to the branch silently.
var errWaitingForRef = errors.New("waiting for the deploy ref")

// poll looks up the commit to follow: the flake ref's branch, or in rollout
// mode the deploy ref, with the reboot ref and the branch in the same single
// request (a no-op tick stays one round trip).
func (a *Agent) poll(ctx context.Context, st *state.State) (string, error) {
	st.Host = a.Target.Host
	if !a.Cfg.Rollout.Enable {
		st.Rollout = nil
		return a.Git.Head(ctx)
	}
	deploy, reboot := a.Cfg.Rollout.Refs(a.Target.Host)
	branch := a.Target.FetchRef()
	found, err := a.Git.Lookup(ctx, deploy, reboot, branch)
	if err != nil {
		return "", err
	}
	if st.Rollout == nil {
		st.Rollout = &state.Rollout{}
	}
	r := st.Rollout
	r.Reboot, r.Missing = found[reboot], false
	if sha, ok := found[deploy]; ok {
		r.Ref, a.Git.Track = deploy, deploy
		return sha, nil
	}
	if st.Applied == nil {
		// A new machine: the driver has not made its ref yet (or the
		// cluster is down). It converges from the branch, once.
		sha, ok := found[branch]
		if !ok {
			return "", fmt.Errorf("the remote has neither %s nor %s: check ref= in the flake ref and rollout.deployRef", deploy, branch)
		}
		r.Ref, a.Git.Track = branch, branch
		return sha, nil
	}
	r.Ref, r.Missing = deploy, true
	return "", fmt.Errorf("%w %s: rollout mode follows it once the machine has converged; `labctl rollout` creates it (the machine keeps its applied commit %s)",
		errWaitingForRef, deploy, short(st.Applied.Commit))
}

// rebootApproved reports whether the reboot ref approves a reboot into
// commit: it points at commit or at a descendant of it.
func (a *Agent) rebootApproved(ctx context.Context, st *state.State, commit string) (bool, error) {
	if st.Rollout == nil || st.Rollout.Reboot == "" {
		return false, nil
	}
	if st.Rollout.Reboot == commit {
		return true, nil
	}
	_, reboot := a.Cfg.Rollout.Refs(a.Target.Host)
	approved, err := a.Git.FetchInto(ctx, reboot, rebootRef)
	if err != nil {
		return false, err
	}
	return a.Git.IsAncestor(ctx, commit, approved)
}

// approvedReboot reboots into a pending generation once its approval
// arrives, on a run that finds nothing new to apply.
func (a *Agent) approvedReboot(ctx context.Context, st *state.State) {
	p := st.PendingBoot
	if a.Cfg.Reboot.Allow != "approved" || p == nil || st.Rollout == nil || st.Rollout.RebootScheduled == p.Generation.Commit {
		return
	}
	a.maybeReboot(ctx, st, p.Generation.Commit, fmt.Sprintf("generation %d (%s): %s", p.Generation.Number, short(p.Generation.Commit), p.Reason))
}
