// recover.go: what a run does first when the one before it was killed.

package agent

import (
	"context"
	"fmt"

	"github.com/homelab-infra/homelab-infra/internal/agent/activation"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// recover handles a run that was killed. done means the run ends here.
func (a *Agent) recover(ctx context.Context, st *state.State) (Result, bool) {
	at := st.InProgress
	if at == nil {
		return Result{}, false
	}
	switch {
	case at.Stage == state.StageBootHealth:
		// The gate after a boot changes nothing: run it again.
		a.Log.Warn("the previous run was interrupted during the health gate after a boot; running it again", "pid", at.PID, "commit", short(at.Commit))
		st.InProgress = nil
		a.save(st)
		return Result{}, false
	case !state.Touches(at.Stage):
		a.Log.Warn("the previous run was interrupted before it touched the system; starting over", "pid", at.PID, "stage", at.Stage, "commit", short(at.Commit))
		st.InProgress = nil
		a.save(st)
		return Result{}, false
	case at.Stage == state.StageProfile:
		cur, ok, err := activation.Current(a.Cfg.Profile)
		if err == nil && (ok && at.Previous != nil && cur.StorePath == at.Previous.StorePath || !ok && at.Previous == nil) {
			a.Log.Warn("the previous run was interrupted before the profile moved; starting over", "pid", at.PID, "commit", short(at.Commit))
			st.InProgress = nil
			a.save(st)
			return Result{}, false
		}
	}
	// The profile may have moved and a switch may have run part way:
	// re-activate the previous generation. An interruption is not the
	// commit's fault, so it is retried, but only once.
	if st.Interrupted == nil {
		st.Interrupted = map[string]int{}
	}
	st.Interrupted[at.Commit]++
	a.Log.Warn("the previous run was interrupted after the system started to change; rolling back to the previous generation",
		"pid", at.PID, "stage", at.Stage, "commit", short(at.Commit), "interruptions", st.Interrupted[at.Commit])
	cause := fmt.Errorf("run (pid %d) was interrupted during %s", at.PID, at.Stage)
	if st.Interrupted[at.Commit] >= 2 {
		st.MarkBad(state.BadCommit{Commit: at.Commit, Stage: at.Stage, Error: cause.Error() + " twice", Time: a.Now().UTC()})
	}
	if at.Previous == nil {
		// Converging from nothing: there is no generation to return to, so
		// the way to a consistent state is forward: apply again (the switch
		// runs again; nothing is skipped for an unrecorded activation).
		a.Log.Warn("no previous generation to return to; applying again", "commit", short(at.Commit))
		st.InProgress = nil
		a.save(st)
		return Result{}, false
	}
	degraded, err := a.reactivate(context.WithoutCancel(ctx), st, at)
	if err != nil {
		st.Fail(state.StageRollback)
		return Result{Outcome: OutcomeRollbackFailed, Commit: at.Commit, Stage: at.Stage, Err: fmt.Errorf("%w; and then cannot roll back: %v", cause, err)}, true
	}
	if p := st.PendingBoot; p != nil && at.Candidate != nil && p.Generation.StorePath == at.Candidate.StorePath {
		st.PendingBoot = nil
	}
	res := Result{Outcome: OutcomeRolledBack, Commit: at.Commit, Stage: at.Stage, Err: cause}
	if degraded != nil {
		res = Result{Outcome: OutcomeRolledBackDegraded, Commit: at.Commit, Stage: at.Stage, Err: fmt.Errorf("%w; rolled back, but %v", cause, degraded)}
	}
	a.finish(st, res)
	return Result{}, false
}
