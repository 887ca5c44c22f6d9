// deploy.go: the stages after the refusals, in order: build, the stages
// between build and switch (Agent.PreSwitch), profile, switch, health gate.

package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/homelab-infra/homelab-infra/internal/agent/activation"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// deploy evaluates, builds, switches and gates commit. reapply is set when
// commit is the applied one and the machine drifted from it: then it is
// switched to even though it builds the applied system.
func (a *Agent) deploy(ctx context.Context, st *state.State, commit, flake string, reapply bool) Result {
	prev, err := a.running(st)
	if err != nil {
		st.Fail(state.StageProfile)
		return Result{Outcome: OutcomeFailed, Commit: commit, Stage: state.StageProfile, Err: err}
	}
	attempt := &state.Attempt{Commit: commit, Stage: state.StageEval, Started: a.Now().UTC(), PID: pid(), Previous: prev}
	attempt.Tries = st.Interrupted[commit]
	st.InProgress = attempt
	a.save(st)

	out, res, ok := a.build(ctx, st, commit)
	if !ok {
		return res
	}

	// The stages between build and switch (secrets and the like): the
	// machine is still untouched.
	cand := Candidate{Commit: commit, Toplevel: out, Previous: attempt.Previous, State: st}
	for _, sg := range a.PreSwitch {
		attempt.Stage = sg.Name()
		a.save(st)
		t0 := a.Now()
		err := sg.Run(ctx, cand)
		a.took(st, sg.Name(), t0)
		if err != nil {
			return a.failBeforeSwitch(ctx, st, commit, sg.Name(), err)
		}
	}

	if !reapply && prev != nil && prev.StorePath == out && st.Applied != nil && st.Applied.StorePath == out {
		// The new commit builds the very system the agent activated last
		// (a change outside this host's closure): nothing to switch. Only a
		// recorded activation counts: a profile set by a run killed before
		// its switch finished does not.
		a.Log.Info("the new commit builds the running system; nothing to switch", "commit", short(commit))
		for _, sg := range a.AfterSwitch {
			if err := sg.Run(ctx, cand); err != nil {
				st.InProgress = nil
				st.Fail(sg.Name())
				return Result{Outcome: OutcomeFailed, Commit: commit, Stage: sg.Name(), Err: err}
			}
		}
		g := *st.Applied
		g.Commit, g.Time = commit, a.Now().UTC()
		return a.succeed(st, commit, flake, g)
	}

	running := ""
	if prev != nil {
		running = prev.StorePath
	}
	mode, why := a.mode(running, out)

	attempt.Stage = state.StageProfile
	attempt.Candidate = &state.Generation{Commit: commit, StorePath: out, SwitchMode: mode}
	a.save(st)
	t0 := a.Now()
	gen, err := a.setProfile(ctx, out)
	a.took(st, state.StageProfile, t0)
	if err != nil {
		return a.rollback(ctx, st, commit, state.StageProfile, err)
	}
	attempt.Candidate.Number = gen.Number
	attempt.Stage = state.StageSwitch
	a.save(st)
	a.Log.Info("activating", "commit", short(commit), "generation", gen.Number, "mode", mode, "why", why)
	t0 = a.Now()
	err = a.Switch.Switch(ctx, out, mode, a.Cfg.Timeouts.Switch.D())
	a.took(st, state.StageSwitch, t0)
	var se *activation.SwitchError
	switch {
	case err == nil:
	case errors.As(err, &se) && se.NeedsBoot() && mode == "switch":
		// The boot loader is updated already: `switch` does that first.
		mode, why = "boot", "switch-to-configuration: the init interface changed, the system takes effect at boot"
		attempt.Candidate.SwitchMode = mode
	case errors.As(err, &se) && se.Busy():
		// Another switch holds the lock: nothing was activated. Put the
		// profile back and try again later.
		if prev != nil {
			if rerr := a.restoreProfile(context.WithoutCancel(ctx), *prev, attempt.Candidate); rerr != nil {
				return a.rollback(ctx, st, commit, state.StageSwitch, errors.Join(err, rerr))
			}
		}
		st.InProgress = nil
		st.Fail(state.StageSwitch)
		return Result{Outcome: OutcomeFailed, Commit: commit, Stage: state.StageSwitch, Err: err, Temporary: true}
	default:
		return a.rollback(ctx, st, commit, state.StageSwitch, err)
	}
	// The stages after the switch run on the activated system: not for a
	// boot-mode generation, which is not running yet.
	if mode == "switch" {
		for _, sg := range a.AfterSwitch {
			if err := sg.Run(ctx, cand); err != nil {
				return a.rollback(ctx, st, commit, sg.Name(), err)
			}
		}
	}

	g := *attempt.Candidate
	g.Time = a.Now().UTC()
	if mode == "boot" {
		// Applied, but it runs only after a reboot: its health gate waits
		// for that boot (see bootHealth).
		a.Log.Warn("the new generation is the boot default; it runs, and is health-gated, after a reboot", "generation", g.Number, "why", why)
		res := a.succeed(st, commit, flake, g)
		st.PendingBoot = &state.Pending{Generation: g, Running: prev, Reason: why, Since: a.Now().UTC()}
		a.maybeReboot(ctx, st, commit, fmt.Sprintf("generation %d (%s): %s", g.Number, short(commit), why))
		res.Outcome = OutcomePendingReboot
		return res
	}

	attempt.Stage = state.StageHealth
	a.save(st)
	t0 = a.Now()
	err = a.runGate(ctx)
	a.took(st, state.StageHealth, t0)
	if err != nil {
		return a.rollback(ctx, st, commit, state.StageHealth, err)
	}
	st.PendingBoot = nil
	return a.succeed(st, commit, flake, g)
}

// running is the generation the machine runs now: what a failure goes back
// to. That is the activated system (currentSystem), not the profile's
// newest entry, which may be a generation set but never activated, or one
// waiting for its boot. Where nothing is activated (not NixOS) it is the
// profile's current generation. nil: converging from nothing.
func (a *Agent) running(st *state.State) (*state.Generation, error) {
	var g *state.Generation
	if p, ok := activation.Running(a.Cfg.CurrentSystem); ok {
		g = &state.Generation{StorePath: p}
		if pg, ok := activation.Find(a.Cfg.Profile, p); ok {
			g.Number = pg.Number
		}
	} else {
		cur, ok, err := activation.Current(a.Cfg.Profile)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, nil
		}
		g = &state.Generation{Number: cur.Number, StorePath: cur.StorePath}
	}
	for _, known := range append([]state.Generation{derefGen(st.Applied)}, st.History...) {
		if known.StorePath == g.StorePath && known.Commit != "" {
			g.Commit = known.Commit
			break
		}
	}
	return g, nil
}

func derefGen(g *state.Generation) state.Generation {
	if g == nil {
		return state.Generation{}
	}
	return *g
}

// setProfile makes out the profile's current generation, without a new
// generation when it already is (a re-apply after drift).
func (a *Agent) setProfile(ctx context.Context, out string) (activation.Generation, error) {
	if cur, ok, err := activation.Current(a.Cfg.Profile); err == nil && ok && cur.StorePath == out {
		return cur, nil
	}
	return activation.SetProfile(ctx, a.Cfg.Profile, out)
}

// runGate runs the health gate within timeouts.health and logs each check.
func (a *Agent) runGate(ctx context.Context) error {
	hctx, cancel := context.WithTimeout(ctx, a.Cfg.Timeouts.Health.D())
	defer cancel()
	report := a.gate().Run(hctx)
	for _, c := range report {
		a.Log.Info("health check", "check", c.Name, "status", c.Status, "detail", c.Detail)
	}
	return report.Err()
}

func (a *Agent) succeed(st *state.State, commit, flake string, g state.Generation) Result {
	if err := a.Git.Pin(context.Background(), commit); err != nil {
		a.Log.Warn("cannot pin the applied commit in the clone", "err", err)
	}
	st.PushApplied(g)
	st.Flake = flake
	st.InProgress = nil
	st.Drift = ""
	delete(st.Interrupted, commit)
	st.Unmark(commit)
	st.LastSuccess = a.Now().UTC()
	st.Counters.Applies++
	a.markFirstBoot(st)
	a.raiseFloor(commit)
	_ = os.Remove(filepath.Join(a.Cfg.StateDir, "candidate")) // the profile holds the GC root now
	return Result{Outcome: OutcomeApplied, Commit: commit}
}

func (a *Agent) markFirstBoot(st *state.State) {
	st.FirstBootDone = true
}

func pid() int { return os.Getpid() }
