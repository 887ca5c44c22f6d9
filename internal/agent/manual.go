// manual.go: `nix-gitops rollback`, the operator's way back.

package agent

import (
	"context"
	"errors"

	"github.com/homelab-infra/homelab-infra/internal/agent/activation"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// Rollback re-activates the good generation recorded before the applied
// one, makes it the applied one, and remembers the commit rolled back from
// as bad so the agent does not re-apply it until a new commit arrives.
func (a *Agent) Rollback(ctx, lockCtx context.Context) (Result, error) {
	lock, st, err := a.prepare(lockCtx)
	if err != nil {
		return Result{}, err
	}
	defer lock.Release()
	if st.Applied == nil || len(st.History) == 0 {
		return Result{}, errors.New("nothing to roll back to: no earlier good generation is recorded in state.json")
	}
	from, to := *st.Applied, st.History[0]
	mode := "switch"
	if to.SwitchMode == "boot" || from.SwitchMode == "boot" {
		// Either side needed a reboot: change the boot default only.
		mode = "boot"
	}
	a.Log.Info("rolling back on request", "from", short(from.Commit), "to", short(to.Commit), "generation", to.Number, "mode", mode)
	st.Counters.Rollbacks++
	res := Result{Outcome: OutcomeRolledBack, Commit: to.Commit}
	gen, err := activation.Restore(ctx, a.Cfg.Profile, activation.Generation{Number: to.Number, StorePath: to.StorePath})
	if err == nil {
		err = a.Switch.Switch(ctx, to.StorePath, mode, a.Cfg.Timeouts.Switch.D())
	}
	if err != nil {
		st.Fail(state.StageRollback)
		res = Result{Outcome: OutcomeRollbackFailed, Commit: to.Commit, Stage: state.StageRollback, Err: err}
		a.finish(st, res)
		return res, nil
	}
	st.MarkBad(state.BadCommit{Commit: from.Commit, Stage: "manual-rollback", Error: "rolled back by `nix-gitops rollback`", Time: a.Now().UTC()})
	to.Number = gen.Number
	st.Applied = &to
	st.History = st.History[1:]
	if err := a.Git.Pin(ctx, to.Commit); err != nil {
		a.Log.Warn("cannot pin the applied commit in the clone", "err", err)
	}
	st.PendingBoot = nil
	if mode == "boot" {
		st.PendingBoot = &state.Pending{Generation: to, Reason: "rolled back by hand to a generation that takes effect at boot", Since: a.Now().UTC()}
		if r, ok := activation.Running(a.Cfg.CurrentSystem); ok {
			st.PendingBoot.Running = &state.Generation{StorePath: r}
		}
	}
	a.finish(st, res)
	return res, nil
}
