// build.go: the build stage (eval, then build, pre-emptible by a newer
// head) and the failure path before anything on the machine has changed.

package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/run"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// build evaluates and builds commit's toplevel. ok is false when the run
// ends here, with res.
func (a *Agent) build(ctx context.Context, st *state.State, commit string) (out string, res Result, ok bool) {
	installable := a.Git.BuildURL(commit) + "#" + a.Target.Attr()
	a.Log.Info("building", "commit", short(commit), "host", a.Target.Host)
	// Eval and build are pre-emptible (as in comin): a newer head, seen by
	// a poll every poll.interval, cancels them. Nothing has changed on the
	// machine yet, so nothing is lost.
	bctx, stopWatch := a.watchHead(ctx, commit)
	defer stopWatch()
	t0 := a.Now()
	drv, err := a.Nix.Eval(bctx, installable, a.Cfg.Timeouts.Eval.D())
	a.took(st, state.StageEval, t0)
	if err != nil {
		return "", a.failBeforeSwitch(bctx, st, commit, state.StageEval, err), false
	}
	st.InProgress.Stage = state.StageBuild
	a.save(st)
	t0 = a.Now()
	out, err = a.Nix.Build(bctx, drv, filepath.Join(a.Cfg.StateDir, "candidate"), a.Cfg.Timeouts.Build.D())
	a.took(st, state.StageBuild, t0)
	if err != nil {
		return "", a.failBeforeSwitch(bctx, st, commit, state.StageBuild, err), false
	}
	return out, Result{}, true
}

// watchHead returns a context that is cancelled with errSuperseded when
// the remote head moves away from commit.
func (a *Agent) watchHead(ctx context.Context, commit string) (context.Context, func()) {
	wctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(a.Cfg.Poll.Interval.D())
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-wctx.Done():
				return
			case <-a.Stopping:
				cancel(errStopping)
				return
			case <-t.C:
				if head, err := a.Git.Head(wctx); err == nil && head != commit {
					cancel(errSuperseded)
					return
				}
			}
		}
	}()
	var once sync.Once
	return wctx, func() { once.Do(func() { close(done); cancel(nil) }) }
}

// errStopping cancels a build when the agent is asked to stop.
var errStopping = errors.New("the agent is stopping")

// fetchFailedRE matches what nix (and the git and curl it drives) print
// when an input cannot be fetched: the network, not the commit.
var fetchFailedRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)unable to download|could not resolve host|couldn't resolve|failed to connect|connection refused|connection timed out|unable to access|network is unreachable|temporary failure in name resolution|error: cannot connect`)
})

// temporaryCause reports whether err from eval, build or a stage has a
// cause outside the commit: the stage's own Temporary mark, a timeout, a
// child killed by a signal (the OOM killer, a shutdown), or a fetch of an
// input that failed.
func temporaryCause(err error) bool {
	if IsTemporary(err) {
		return true
	}
	var re *run.Error
	if !errors.As(err, &re) {
		return false
	}
	return re.TimedOut || re.Signaled() || fetchFailedRE().MatchString(re.Stderr)
}

// retryAfter is the back-off of a commit whose failure may not be its own:
// 1 min, doubling per failure, at most an hour.
func retryAfter(tries int) time.Duration {
	d := time.Minute
	for i := 1; i < tries && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// failBeforeSwitch ends a run that failed before the profile moved. An
// error of the commit's own (it does not evaluate) is held against it until
// the head moves; a failed build is retried after buildRetryAfter (a full
// disk or a missing substituter is not the commit's fault); a cause outside
// the commit (see temporaryCause) after a growing back-off.
func (a *Agent) failBeforeSwitch(ctx context.Context, st *state.State, commit, stage string, err error) Result {
	st.InProgress = nil
	_ = os.Remove(filepath.Join(a.Cfg.StateDir, "candidate"))
	if errors.Is(context.Cause(ctx), errSuperseded) {
		return Result{Outcome: outcomeSuperseded, Commit: commit, Stage: stage}
	}
	st.Fail(stage)
	if errors.Is(err, context.Canceled) || errors.Is(context.Cause(ctx), errStopping) {
		return Result{Outcome: OutcomeFailed, Commit: commit, Stage: stage, Err: err, Temporary: true}
	}
	b := state.BadCommit{Commit: commit, Stage: stage, Error: err.Error(), Time: a.Now().UTC()}
	temp := temporaryCause(err)
	if old, ok := st.IsBad(commit); ok && old.Stage == stage {
		b.Tries = old.Tries
	}
	switch {
	case temp:
		b.Tries++
		b.RetryAfter = b.Time.Add(retryAfter(b.Tries))
	case stage == state.StageBuild:
		b.RetryAfter = b.Time.Add(buildRetryAfter)
	}
	st.MarkBad(b)
	return Result{Outcome: OutcomeFailed, Commit: commit, Stage: stage, Err: err, Temporary: temp}
}
