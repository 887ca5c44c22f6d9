// rollback.go: back to the generation that ran before, after a failure past
// the profile step.

package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/homelab-infra/homelab-infra/internal/agent/activation"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// rollback re-activates the attempt's previous generation after a failure
// at stage, and remembers commit as bad.
func (a *Agent) rollback(ctx context.Context, st *state.State, commit, stage string, cause error) Result {
	st.Fail(stage)
	// A run stopped from outside (SIGTERM, shutdown) says nothing about the
	// commit: roll back, but do not hold it against the commit.
	if !errors.Is(cause, context.Canceled) && ctx.Err() == nil {
		st.MarkBad(state.BadCommit{Commit: commit, Stage: stage, Error: cause.Error(), Time: a.Now().UTC()})
	}
	a.Log.Error("rolling back", "commit", short(commit), "stage", stage, "err", cause)
	degraded, err := a.reactivate(context.WithoutCancel(ctx), st, st.InProgress)
	switch {
	case err != nil:
		st.Fail(state.StageRollback)
		return Result{Outcome: OutcomeRollbackFailed, Commit: commit, Stage: stage, Err: fmt.Errorf("%w; and then cannot roll back: %v", cause, err)}
	case degraded != nil:
		return Result{Outcome: OutcomeRolledBackDegraded, Commit: commit, Stage: stage, Err: fmt.Errorf("%w; rolled back, but %v", cause, degraded)}
	}
	return Result{Outcome: OutcomeRolledBack, Commit: commit, Stage: stage, Err: cause}
}

// reactivate puts the attempt's previous generation (the one that ran when
// the attempt started) back: the profile first, without the failed
// generation, so it is neither the profile's nor the boot menu's newest
// entry; then its switch-to-configuration, with the action the failed
// attempt used ("boot" only re-points the boot loader).
//
// A switch back that activated the generation but left a unit failed
// (switch-to-configuration exit 4) is a rollback all the same: the previous
// generation runs. It is returned as degraded, and the attempt is over
// either way; only an error leaves the attempt recorded, for the next run to
// roll back again.
func (a *Agent) reactivate(ctx context.Context, st *state.State, at *state.Attempt) (degraded, err error) {
	st.Counters.Rollbacks++
	if at == nil || at.Previous == nil || at.Previous.StorePath == "" {
		st.InProgress = nil
		return nil, errors.New("no previous generation is recorded to return to (the machine had no system profile before this commit)")
	}
	prev := *at.Previous
	mode := "switch"
	if at.Candidate != nil && at.Candidate.SwitchMode == "boot" {
		mode = "boot"
	}
	st.InProgress.Stage = state.StageRollback
	a.save(st)
	if err := a.restoreProfile(ctx, prev, at.Candidate); err != nil {
		return nil, err
	}
	t0 := a.Now()
	err = a.Switch.Switch(ctx, prev.StorePath, mode, a.Cfg.Timeouts.Switch.D())
	a.took(st, state.StageRollback, t0)
	var se *activation.SwitchError
	if errors.As(err, &se) && se.Degraded() {
		a.Log.Error("rolled back, but a unit of the previous generation failed", "generation", prev.Number, "err", err)
		degraded, err = err, nil
	}
	if err != nil {
		return nil, err
	}
	st.InProgress = nil
	a.Log.Info("rolled back", "generation", prev.Number, "toplevel", prev.StorePath)
	return degraded, nil
}

// restoreProfile points the profile at back and removes the failed
// generation from it.
func (a *Agent) restoreProfile(ctx context.Context, back state.Generation, failed *state.Generation) error {
	cur, err := activation.Restore(ctx, a.Cfg.Profile, activation.Generation{Number: back.Number, StorePath: back.StorePath})
	if err != nil {
		return err
	}
	if failed != nil && failed.Number > 0 && failed.Number != cur.Number && failed.StorePath != back.StorePath {
		if err := activation.Delete(ctx, a.Cfg.Profile, failed.Number); err != nil {
			// The rollback itself stands; a leftover generation is untidy,
			// not unsafe (the boot default is the restored one).
			a.Log.Warn("cannot remove the failed generation from the profile", "generation", failed.Number, "err", err)
		}
	}
	return nil
}
