// refuse.go: the refusals before anything is built: fast-forward only,
// signatures, and commits remembered as bad.

package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// skip reports whether commit is remembered as bad and still to be
// skipped. A failed build may have failed for a reason outside the commit
// (a full disk, a substituter down), so it is retried after
// buildRetryAfter; everything else waits for a new commit, --retry-bad, or
// for a refusal, --allow-non-fast-forward.
func (a *Agent) skip(st *state.State, commit string) (state.BadCommit, bool) {
	bad, ok := st.IsBad(commit)
	switch {
	case !ok || a.RetryBad:
		return bad, false
	case bad.Stage == state.StageRefuse && a.Cfg.AllowNonFastForward:
		return bad, false
	case !bad.RetryAfter.IsZero() && a.Now().After(bad.RetryAfter):
		a.Log.Info("retrying a commit whose last failure may not have been its own", "commit", short(commit), "stage", bad.Stage, "failed", bad.Time)
		return bad, false
	}
	return bad, true
}

// buildRetryAfter is how long a failed build's commit is left alone.
const buildRetryAfter = time.Hour

func (a *Agent) refuse(st *state.State, commit string, err error) Result {
	st.Fail(state.StageRefuse)
	st.MarkBad(state.BadCommit{Commit: commit, Stage: state.StageRefuse, Error: err.Error(), Time: a.Now().UTC()})
	return Result{Outcome: OutcomeRefused, Commit: commit, Stage: state.StageRefuse, Err: err}
}

// checkFastForward refuses a commit that does not descend from the applied
// one (a force-push or downgrade), nor from any floor commit: with a lost
// state.json, or at first boot, the floor still keeps the machine from
// going back to a commit older than one it ran, or than its template.
func (a *Agent) checkFastForward(ctx context.Context, st *state.State, commit string) error {
	if st.Applied != nil && st.Applied.Commit != "" {
		ok, err := a.Git.IsAncestor(ctx, st.Applied.Commit, commit)
		if err != nil {
			return fmt.Errorf("cannot check that %s descends from the applied %s: %w", short(commit), short(st.Applied.Commit), err)
		}
		if !ok {
			if !a.Cfg.AllowNonFastForward {
				return fmt.Errorf("refusing %s: it does not descend from the applied commit %s (a force-push or downgrade); pass --allow-non-fast-forward to accept it once", short(commit), short(st.Applied.Commit))
			}
			a.Log.Warn("applying a commit that does not descend from the applied one (--allow-non-fast-forward)", "applied", short(st.Applied.Commit), "new", short(commit))
			return nil
		}
	}
	floors, err := a.floors()
	if err != nil {
		return err
	}
	for _, f := range floors {
		if f == commit {
			continue
		}
		ok, err := a.Git.IsAncestor(ctx, f, commit)
		if err == nil && ok {
			continue
		}
		if a.Cfg.AllowNonFastForward {
			a.Log.Warn("applying a commit that does not descend from the floor commit (--allow-non-fast-forward)", "floor", short(f), "new", short(commit))
			continue
		}
		why := "it does not descend from it"
		if err != nil {
			why = "the floor commit is not in the fetched history"
		}
		return fmt.Errorf("refusing %s: this machine already ran (or was built from) commit %s, and %s: a downgrade or a force-push; pass --allow-non-fast-forward to accept it once", short(commit), short(f), why)
	}
	return nil
}

// verify checks the signature of commit, and with verify.allCommits of every
// commit since the applied one (or the floor): a signed head on top of an
// unsigned commit does not vouch for that commit.
func (a *Agent) verify(ctx context.Context, st *state.State, commit string) error {
	if a.Cfg.Verify.Mode == "none" {
		return nil
	}
	commits := []string{commit}
	if a.Cfg.Verify.AllCommits {
		base := ""
		if st.Applied != nil && st.Applied.Commit != "" {
			base = st.Applied.Commit
		} else if floors, err := a.floors(); err == nil && len(floors) > 0 {
			base = floors[len(floors)-1]
		}
		if base != "" && base != commit {
			list, err := a.Git.RevList(ctx, base, commit)
			if err != nil {
				return err
			}
			commits = list
		}
	}
	for _, c := range commits {
		if err := a.Git.Verify(ctx, c, a.Cfg.Verify.Mode, a.Cfg.Verify.AllowedSigners, a.Cfg.StateDir); err != nil {
			if c != commit {
				return fmt.Errorf("refusing %s: commit %s between the applied one and it: %w", short(commit), short(c), err)
			}
			return err
		}
	}
	return nil
}
