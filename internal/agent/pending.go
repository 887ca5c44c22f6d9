// pending.go: a boot-mode generation's health gate, run by the first run
// after the reboot that boots it.

package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/homelab-infra/homelab-infra/internal/agent/activation"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// bootHealth handles state.PendingBoot. Until the machine boots the pending
// generation nothing happens (done is false: the run goes on as usual). The
// first run in the booted generation runs the health gate: on success the
// generation is simply applied; on failure the commit is remembered as bad
// and the machine goes back to the generation that ran before, the only way
// a kernel change can be undone: that generation becomes the boot default
// again (switch-to-configuration boot), the failed one leaves the profile,
// and a reboot is required (or done, when reboot.allow permits).
func (a *Agent) bootHealth(ctx context.Context, st *state.State) (Result, bool) {
	p := st.PendingBoot
	if p == nil {
		return Result{}, false
	}
	booted, ok := activation.Running(a.Cfg.BootedSystem)
	if !ok || booted != p.Generation.StorePath {
		return Result{}, false
	}
	commit := p.Generation.Commit
	st.InProgress = &state.Attempt{Commit: commit, Stage: state.StageBootHealth, Started: a.Now().UTC(), PID: pid(),
		Previous: p.Running, Candidate: &p.Generation}
	a.save(st)
	a.Log.Info("booted into the generation that waited for its reboot; running its health gate", "commit", short(commit), "generation", p.Generation.Number)
	t0 := a.Now()
	err := a.runGate(ctx)
	a.took(st, state.StageBootHealth, t0)
	if err == nil {
		st.PendingBoot, st.InProgress = nil, nil
		st.LastSuccess = a.Now().UTC()
		a.markFirstBoot(st)
		return Result{Outcome: OutcomeApplied, Commit: commit, Stage: state.StageBootHealth}, true
	}
	st.Fail(state.StageBootHealth)
	if ctx.Err() == nil {
		st.MarkBad(state.BadCommit{Commit: commit, Stage: state.StageBootHealth, Error: err.Error(), Time: a.Now().UTC()})
	}
	if p.Running == nil {
		st.PendingBoot, st.InProgress = nil, nil
		return Result{Outcome: OutcomeRollbackFailed, Commit: commit, Stage: state.StageBootHealth,
			Err: fmt.Errorf("%w; and no generation is recorded to go back to", err)}, true
	}
	a.Log.Error("the booted generation failed its health gate; making the previous one the boot default again", "commit", short(commit), "err", err)
	st.Counters.Rollbacks++
	back := *p.Running
	st.InProgress.Stage = state.StageRollback
	a.save(st)
	actx := context.WithoutCancel(ctx)
	if rerr := a.restoreProfile(actx, back, &p.Generation); rerr == nil {
		rerr = a.Switch.Switch(actx, back.StorePath, "boot", a.Cfg.Timeouts.Switch.D())
		err = errors.Join(err, rerr)
		if rerr != nil {
			st.Fail(state.StageRollback)
			return Result{Outcome: OutcomeRollbackFailed, Commit: commit, Stage: state.StageBootHealth, Err: err}, true
		}
	} else {
		st.Fail(state.StageRollback)
		return Result{Outcome: OutcomeRollbackFailed, Commit: commit, Stage: state.StageBootHealth, Err: errors.Join(err, rerr)}, true
	}
	st.PendingBoot, st.InProgress = nil, nil
	back.SwitchMode = "boot"
	st.PushApplied(back)
	st.History = dropGeneration(st.History, p.Generation.StorePath)
	a.maybeReboot(ctx, st, commit, "generation "+fmt.Sprint(back.Number)+" is the boot default again after a failed health gate")
	return Result{Outcome: OutcomeRolledBack, Commit: commit, Stage: state.StageBootHealth, Err: err}, true
}

// dropGeneration removes the generations of toplevel from a history list.
func dropGeneration(h []state.Generation, toplevel string) []state.Generation {
	var out []state.Generation
	for _, g := range h {
		if g.StorePath != toplevel {
			out = append(out, g)
		}
	}
	return out
}
