// converge.go: one run of the pipeline up to the deploy: the poll (the one
// ref lookup of a no-op tick), the fetch of exactly the tracked ref, and the
// up-to-date check.

package agent

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/homelab-infra/homelab-infra/internal/agent/gitsource"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

func (a *Agent) apply(ctx context.Context, st *state.State) Result {
	if r, done := a.recover(ctx, st); done {
		return r
	}
	// A boot-mode generation is gated by the first run after its boot,
	// whoever starts it (the boot-time unit too).
	if r, done := a.bootHealth(ctx, st); done {
		return r
	}
	if a.FirstBoot && st.FirstBootDone && !a.Cfg.EveryBoot && os.Getenv("TRIGGER_UNIT") == "" {
		a.Log.Info("first boot already converged; a boot-time start does nothing (the timer, `nix-gitops apply` or everyBoot apply again)")
		return Result{Outcome: OutcomeUpToDate, Commit: commitOf(st.Applied)}
	}
	for i := 1; ; i++ {
		res := a.converge(ctx, st)
		if res.Outcome == OutcomeUpToDate {
			// Git did not move; secrets may have (rotation, renewal).
			return a.refreshSecrets(ctx, st, res)
		}
		if res.Outcome != outcomeSuperseded {
			return res
		}
		if i == maxSuperseded {
			return Result{Outcome: OutcomeFailed, Commit: res.Commit, Stage: res.Stage,
				Err: fmt.Errorf("the remote head moved %d times during builds; giving up until the next run", i)}
		}
		a.Log.Info("a newer commit arrived during the build; building that one instead", "superseded", short(res.Commit))
	}
}

// outcomeSuperseded ends a converge whose eval or build was cancelled
// because the remote head moved: apply starts over with the new head.
const outcomeSuperseded = "superseded"

// maxSuperseded bounds the restarts of one run (a remote that never
// settles must not keep the lock forever).
const maxSuperseded = 5

var errSuperseded = errors.New("superseded by a newer commit")

// converge is one pass: poll, and if the head moved, fetch, check and
// deploy it.
func (a *Agent) converge(ctx context.Context, st *state.State) Result {
	flake := a.Target.String()

	// Poll: the one ref lookup of a no-op tick.
	var head string
	err := a.withRetry(ctx, "look up the remote head", func() error {
		var err error
		head, err = a.poll(ctx, st)
		return err
	})
	st.LastCheck = a.Now().UTC()
	st.Counters.Checks++
	if errors.Is(err, errWaitingForRef) {
		return Result{Outcome: OutcomeWaitingForRef, Commit: commitOf(st.Applied), Stage: state.StagePoll, Err: err}
	}
	if err != nil {
		st.Fail(state.StagePoll)
		return Result{Outcome: OutcomeFailed, Stage: state.StagePoll, Err: err, Temporary: !errors.Is(err, gitsource.ErrDenied)}
	}
	st.RemoteHead = head
	if st.Applied != nil && st.Applied.Commit == head && st.Flake == flake {
		a.approvedReboot(ctx, st)
		return a.upToDate(ctx, st, head, flake)
	}
	if bad, ok := a.skip(st, head); ok {
		return a.skipped(head, bad)
	}

	// Fetch exactly the tracked ref.
	t0 := a.Now()
	var commit string
	err = a.withRetry(ctx, "fetch", func() error {
		var err error
		commit, err = a.Git.Fetch(ctx)
		return err
	})
	a.took(st, state.StageFetch, t0)
	if err != nil {
		st.Fail(state.StageFetch)
		return Result{Outcome: OutcomeFailed, Commit: head, Stage: state.StageFetch, Err: err, Temporary: !errors.Is(err, gitsource.ErrDenied)}
	}
	if commit != head {
		a.Log.Info("the remote moved between poll and fetch; following the fetched commit", "polled", short(head), "fetched", short(commit))
		if bad, ok := a.skip(st, commit); ok {
			return a.skipped(commit, bad)
		}
	}
	st.RemoteHead = commit
	if st.Applied != nil && st.Applied.Commit == commit && st.Flake == flake {
		return a.upToDate(ctx, st, commit, flake)
	}

	// Refusals: fast-forward only (and never below the floor), signatures.
	if err := a.checkFastForward(ctx, st, commit); err != nil {
		return a.refuse(st, commit, err)
	}
	if err := a.verify(ctx, st, commit); err != nil {
		return a.refuse(st, commit, err)
	}
	return a.deploy(ctx, st, commit, flake, false)
}

func (a *Agent) skipped(commit string, bad state.BadCommit) Result {
	return Result{Outcome: OutcomeSkippedBad, Commit: commit, Stage: bad.Stage, Temporary: bad.Tries > 0,
		Err: fmt.Errorf("commit %s failed before (%s: %s); it is not retried until a new commit arrives (or `nix-gitops apply --retry-bad`)", short(commit), bad.Stage, bad.Error)}
}

// upToDate ends a run whose head is the applied commit, unless the machine
// drifted from it: a manual switch or rollback left another system running,
// or the profile pointing elsewhere. Then, by onDrift, the applied commit is
// switched to again (reapply), or the drift is only reported.
func (a *Agent) upToDate(ctx context.Context, st *state.State, commit, flake string) Result {
	drift := a.drift(st)
	if drift == "" {
		st.Drift = ""
		st.LastSuccess = a.Now().UTC()
		a.markFirstBoot(st)
		return Result{Outcome: OutcomeUpToDate, Commit: commit}
	}
	if st.Drift != drift {
		a.Log.Warn("the machine drifted from the applied generation", "drift", drift, "onDrift", a.Cfg.OnDrift)
	}
	st.Drift = drift
	if a.Cfg.OnDrift == "report" {
		return Result{Outcome: OutcomeUpToDate, Commit: commit, Err: errors.New("drift: " + drift + " (onDrift is \"report\")")}
	}
	if bad, ok := a.skip(st, commit); ok {
		return Result{Outcome: OutcomeUpToDate, Commit: commit,
			Err: fmt.Errorf("drift: %s; the applied commit failed when it was applied again (%s: %s), so it is only reported until a new commit arrives", drift, bad.Stage, bad.Error)}
	}
	a.Log.Info("applying the applied commit again", "commit", short(commit), "drift", drift)
	return a.deploy(ctx, st, commit, flake, true)
}
