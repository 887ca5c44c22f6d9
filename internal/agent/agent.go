// Package agent is nix-gitops's pipeline: poll → fetch → fast-forward
// check → signature check → eval → build → set profile → switch → health
// gate → keep, or roll back to the recorded previous generation.
//
// Every risky step is written to state.json (InProgress) before it starts,
// so a run that was killed is recovered by the next one: interrupted before
// the profile moved, there is nothing to undo; interrupted after, the
// previous generation is re-activated. A commit that fails after its switch
// (switch-to-configuration or health gate), or is refused, or does not
// evaluate or build, is remembered as bad and not tried again until the
// head moves (or `apply --retry-bad`).
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/activation"
	"github.com/homelab-infra/homelab-infra/internal/agent/config"
	"github.com/homelab-infra/homelab-infra/internal/agent/gitsource"
	"github.com/homelab-infra/homelab-infra/internal/agent/health"
	"github.com/homelab-infra/homelab-infra/internal/agent/metrics"
	"github.com/homelab-infra/homelab-infra/internal/agent/nixbuild"
	"github.com/homelab-infra/homelab-infra/internal/agent/run"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
	"github.com/homelab-infra/homelab-infra/internal/agent/units"
	"github.com/homelab-infra/homelab-infra/internal/flakeref"
)

// Outcomes of a run, as recorded in state.json and in metrics.
const (
	OutcomeApplied        = "applied"
	OutcomeUpToDate       = "up-to-date"
	OutcomeRolledBack     = "rolled-back"
	OutcomeFailed         = "failed"  // before the switch; the system is untouched
	OutcomeRefused        = "refused" // non-fast-forward or signature
	OutcomeSkippedBad     = "skipped-bad-commit"
	OutcomeRollbackFailed = "rollback-failed"
)

// ExitCode maps an outcome to `nix-gitops apply`'s exit status.
func ExitCode(outcome string) int {
	switch outcome {
	case OutcomeApplied:
		return units.ExitApplied
	case OutcomeUpToDate:
		return units.ExitUpToDate
	case OutcomeRolledBack:
		return units.ExitRolledBack
	case OutcomeRollbackFailed:
		return units.ExitRollbackFailed
	default:
		return units.ExitFailedBeforeSwitch
	}
}

// Agent is one configured agent.
type Agent struct {
	Cfg     config.Config
	Target  flakeref.Ref
	Log     *slog.Logger
	Git     *gitsource.Source
	Nix     *nixbuild.Nix
	Systemd health.Systemd
	Metrics *metrics.Collector

	// Per run options.
	FirstBoot bool // started by the boot-time unit
	RetryBad  bool // try the head even if it is remembered as bad
	Now       func() time.Time
	// Sleep waits between retries (tests shorten it).
	Sleep func(ctx context.Context, d time.Duration) error
	// Daemon is set by Run: state survives between ticks in memory.
	Daemon bool

	cached     *state.State
	cachedFile os.FileInfo
	lastWrite  time.Time
}

// durableEvery bounds how long a daemon keeps no-op bookkeeping only in
// memory.
const durableEvery = 10 * time.Minute

// New builds an agent from a defaulted, validated config.
func New(cfg config.Config, log *slog.Logger) (*Agent, error) {
	target, err := cfg.Target()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find the agent's own executable: %w", err)
	}
	return &Agent{
		Cfg:    cfg,
		Target: target,
		Log:    log,
		Git: &gitsource.Source{Ref: target, Clone: filepath.Join(cfg.StateDir, "repo.git"), Auth: cfg.Auth,
			Timeout: cfg.Timeouts.Fetch.D(), Self: self, Log: log, Method: cfg.Poll.Method},
		Nix:     &nixbuild.Nix{CacheDir: filepath.Join(cfg.StateDir, "cache")},
		Systemd: health.Systemctl{},
		Metrics: &metrics.Collector{},
		Now:     time.Now,
		Sleep:   sleepCtx,
	}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Result is what one run did.
type Result struct {
	Outcome string
	Commit  string
	Stage   string
	Err     error
}

// prepare creates the state folder and takes the lock.
func (a *Agent) prepare(lockCtx context.Context) (*state.Lock, *state.State, error) {
	if err := os.MkdirAll(a.Cfg.StateDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("cannot create the state folder: %w", err)
	}
	lock, err := state.Acquire(lockCtx, a.Cfg.StateDir)
	if err != nil {
		return nil, nil, err
	}
	// The daemon keeps the state between ticks and re-reads the file only
	// when another run changed it.
	fi, _ := os.Stat(filepath.Join(a.Cfg.StateDir, state.FileName))
	if a.cached != nil && sameFile(fi, a.cachedFile) {
		return lock, a.cached, nil
	}
	st, err := state.Load(a.Cfg.StateDir)
	if err != nil {
		lock.Release()
		return nil, nil, err
	}
	a.cached, a.cachedFile = st, fi
	return lock, st, nil
}

func sameFile(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

func (a *Agent) save(st *state.State) {
	if err := state.Save(a.Cfg.StateDir, st); err != nil {
		a.Log.Error("cannot save state", "err", err)
	}
	a.cached = st
	a.cachedFile, _ = os.Stat(filepath.Join(a.Cfg.StateDir, state.FileName))
	a.lastWrite = a.Now()
	a.Metrics.Set(st)
}

// Apply converges once. lockCtx bounds the wait for another run's lock
// (an already-done context means: do not wait).
func (a *Agent) Apply(ctx, lockCtx context.Context) (Result, error) {
	lock, st, err := a.prepare(lockCtx)
	if err != nil {
		return Result{}, err
	}
	defer lock.Release()
	res := a.apply(ctx, st)
	a.finish(st, res)
	return res, nil
}

func (a *Agent) finish(st *state.State, res Result) {
	quiet := a.Daemon && res.Outcome == OutcomeUpToDate && st.Last != nil && st.Last.Outcome == OutcomeUpToDate &&
		st.Last.Commit == res.Commit && a.Now().Sub(a.lastWrite) < durableEvery
	st.Last = &state.Result{Outcome: res.Outcome, Commit: res.Commit, Stage: res.Stage, Time: a.Now().UTC()}
	if res.Err != nil {
		st.Last.Error = res.Err.Error()
	}
	if quiet {
		// A daemon no-op tick after a no-op tick changes only bookkeeping
		// (check time and count): keep it in memory and in the served
		// metrics, and write state.json (two fsyncs, most of a no-op
		// tick's cost) only every durableEvery.
		a.cached = st
		a.Metrics.Set(st)
		a.Log.Debug("run finished", "outcome", res.Outcome, "commit", short(res.Commit), "processes", run.Started.Load())
		return
	}
	a.save(st)
	if a.Cfg.Metrics.Textfile != "" {
		if err := metrics.WriteTextfile(a.Cfg.Metrics.Textfile, st); err != nil {
			a.Log.Error("cannot write the metrics textfile", "err", err)
		}
	}
	// processes: children started by this agent process so far (a no-op
	// tick over http(s) starts none; over file:// or ssh one git).
	attrs := []any{"outcome", res.Outcome, "commit", short(res.Commit), "processes", run.Started.Load()}
	if res.Stage != "" {
		attrs = append(attrs, "stage", res.Stage)
	}
	switch {
	case res.Err != nil:
		a.Log.Error("run finished", append(attrs, "err", res.Err)...)
	default:
		a.Log.Info("run finished", attrs...)
	}
}

func (a *Agent) apply(ctx context.Context, st *state.State) Result {
	if r, done := a.recover(ctx, st); done {
		return r
	}
	if a.FirstBoot && st.FirstBootDone && !a.Cfg.EveryBoot && os.Getenv("TRIGGER_UNIT") == "" {
		a.Log.Info("first boot already converged; a boot-time start does nothing (the timer, `nix-gitops apply` or everyBoot apply again)")
		return Result{Outcome: OutcomeUpToDate, Commit: commitOf(st.Applied)}
	}
	for i := 1; ; i++ {
		res := a.converge(ctx, st)
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
		head, err = a.Git.Head(ctx)
		return err
	})
	st.LastCheck = a.Now().UTC()
	st.Counters.Checks++
	if err != nil {
		st.Fail(state.StagePoll)
		return Result{Outcome: OutcomeFailed, Stage: state.StagePoll, Err: err}
	}
	st.RemoteHead = head
	if st.Applied != nil && st.Applied.Commit == head && st.Flake == flake {
		st.LastSuccess = a.Now().UTC()
		a.markFirstBoot(st)
		return Result{Outcome: OutcomeUpToDate, Commit: head}
	}
	if bad, ok := a.skip(st, head); ok {
		return Result{Outcome: OutcomeSkippedBad, Commit: head, Stage: bad.Stage,
			Err: fmt.Errorf("head %s failed before (%s: %s); it is not retried until a new commit arrives (or `nix-gitops apply --retry-bad`)", short(head), bad.Stage, bad.Error)}
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
		return Result{Outcome: OutcomeFailed, Commit: head, Stage: state.StageFetch, Err: err}
	}
	if commit != head {
		a.Log.Info("the remote moved between poll and fetch; following the fetched commit", "polled", short(head), "fetched", short(commit))
		if bad, ok := a.skip(st, commit); ok {
			return Result{Outcome: OutcomeSkippedBad, Commit: commit, Stage: bad.Stage, Err: fmt.Errorf("fetched commit %s failed before (%s)", short(commit), bad.Stage)}
		}
	}
	st.RemoteHead = commit
	if st.Applied != nil && st.Applied.Commit == commit && st.Flake == flake {
		st.LastSuccess = a.Now().UTC()
		a.markFirstBoot(st)
		return Result{Outcome: OutcomeUpToDate, Commit: commit}
	}

	// Refusals: fast-forward only, signatures.
	if err := a.checkFastForward(ctx, st, commit); err != nil {
		return a.refuse(st, commit, err)
	}
	if a.Cfg.Verify.Mode != "none" {
		if err := a.Git.Verify(ctx, commit, a.Cfg.Verify.Mode, a.Cfg.Verify.AllowedSigners, a.Cfg.StateDir); err != nil {
			return a.refuse(st, commit, err)
		}
	}
	return a.deploy(ctx, st, commit, flake)
}

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
		a.Log.Info("retrying a commit whose build failed a while ago", "commit", short(commit), "failed", bad.Time)
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

func (a *Agent) checkFastForward(ctx context.Context, st *state.State, commit string) error {
	if st.Applied == nil || st.Applied.Commit == "" {
		return nil
	}
	ok, err := a.Git.IsAncestor(ctx, st.Applied.Commit, commit)
	if err != nil {
		return fmt.Errorf("cannot check that %s descends from the applied %s: %w", short(commit), short(st.Applied.Commit), err)
	}
	if ok {
		return nil
	}
	if a.Cfg.AllowNonFastForward {
		a.Log.Warn("applying a commit that does not descend from the applied one (--allow-non-fast-forward)", "applied", short(st.Applied.Commit), "new", short(commit))
		return nil
	}
	return fmt.Errorf("refusing %s: it does not descend from the applied commit %s (a force-push or downgrade); pass --allow-non-fast-forward to accept it once", short(commit), short(st.Applied.Commit))
}

// deploy evaluates, builds, switches and gates commit.
func (a *Agent) deploy(ctx context.Context, st *state.State, commit, flake string) Result {
	prev, hasPrev, err := activation.Current(a.Cfg.Profile)
	if err != nil {
		st.Fail(state.StageProfile)
		return Result{Outcome: OutcomeFailed, Commit: commit, Stage: state.StageProfile, Err: err}
	}
	attempt := &state.Attempt{Commit: commit, Stage: state.StageEval, Started: a.Now().UTC(), PID: os.Getpid()}
	if hasPrev {
		attempt.Previous = &state.Generation{Number: prev.Number, StorePath: prev.StorePath}
		if st.Applied != nil && st.Applied.StorePath == prev.StorePath {
			attempt.Previous.Commit = st.Applied.Commit
		}
	}
	attempt.Tries = st.Interrupted[commit]
	st.InProgress = attempt
	a.save(st)

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
		return a.failBeforeSwitch(bctx, st, commit, state.StageEval, err)
	}
	attempt.Stage = state.StageBuild
	a.save(st)
	t0 = a.Now()
	out, err := a.Nix.Build(bctx, drv, filepath.Join(a.Cfg.StateDir, "candidate"), a.Cfg.Timeouts.Build.D())
	a.took(st, state.StageBuild, t0)
	if err != nil {
		return a.failBeforeSwitch(bctx, st, commit, state.StageBuild, err)
	}
	stopWatch()
	if hasPrev && prev.StorePath == out && st.Applied != nil && st.Applied.StorePath == out {
		// The new commit builds the very system the agent activated last
		// (a change outside this host's closure): nothing to switch. Only a
		// recorded activation counts: a profile set by a run killed before
		// its switch finished does not.
		a.Log.Info("the new commit builds the running system; nothing to switch", "commit", short(commit))
		return a.succeed(st, commit, flake, state.Generation{Commit: commit, Number: prev.Number, StorePath: out, SwitchMode: "switch", Time: a.Now().UTC()})
	}

	kernelChanged, err := activation.KernelChanged(a.Cfg.BootedSystem, out)
	if err != nil {
		a.Log.Warn("cannot tell whether the kernel changed; assuming it did", "err", err)
		kernelChanged = true
	}
	mode := "switch"
	if kernelChanged && a.Cfg.OnKernelChange == "boot" {
		mode = "boot"
	}

	attempt.Stage = state.StageProfile
	attempt.Candidate = &state.Generation{Commit: commit, StorePath: out, SwitchMode: mode}
	a.save(st)
	t0 = a.Now()
	gen, err := activation.SetProfile(ctx, a.Cfg.Profile, out)
	a.took(st, state.StageProfile, t0)
	if err != nil {
		return a.rollback(ctx, st, commit, state.StageProfile, err)
	}
	attempt.Candidate.Number = gen.Number
	attempt.Stage = state.StageSwitch
	a.save(st)
	a.Log.Info("activating", "commit", short(commit), "generation", gen.Number, "mode", mode, "kernelChanged", kernelChanged)
	t0 = a.Now()
	err = activation.Switch(ctx, out, mode, a.Cfg.Timeouts.Switch.D())
	a.took(st, state.StageSwitch, t0)
	if err != nil {
		return a.rollback(ctx, st, commit, state.StageSwitch, err)
	}

	attempt.Stage = state.StageHealth
	a.save(st)
	t0 = a.Now()
	hctx, cancel := context.WithTimeout(ctx, a.Cfg.Timeouts.Health.D())
	report := a.gate().Run(hctx)
	cancel()
	a.took(st, state.StageHealth, t0)
	for _, c := range report {
		a.Log.Info("health check", "check", c.Name, "status", c.Status, "detail", c.Detail)
	}
	if err := report.Err(); err != nil {
		return a.rollback(ctx, st, commit, state.StageHealth, err)
	}
	g := *attempt.Candidate
	g.Time = a.Now().UTC()
	st.RebootRequired = kernelChanged
	return a.succeed(st, commit, flake, g)
}

func (a *Agent) gate() *health.Gate {
	h := a.Cfg.Health
	g := &health.Gate{Systemd: a.Systemd, OwnUnit: health.OwnUnit(), CheckSystemd: *h.Systemd, RequiredUnits: h.RequiredUnits, TCP: h.TCP, HTTP: h.HTTP,
		Script: h.Script, Settle: h.Settle.D()}
	if *h.GitReachable {
		g.GitReachable = func(ctx context.Context) error { _, err := a.Git.Head(ctx); return err }
	}
	return g
}

func (a *Agent) succeed(st *state.State, commit, flake string, g state.Generation) Result {
	if err := a.Git.Pin(context.Background(), commit); err != nil {
		a.Log.Warn("cannot pin the applied commit in the clone", "err", err)
	}
	st.PushApplied(g)
	st.Flake = flake
	st.InProgress = nil
	delete(st.Interrupted, commit)
	st.Unmark(commit)
	st.LastSuccess = a.Now().UTC()
	st.Counters.Applies++
	a.markFirstBoot(st)
	_ = os.Remove(filepath.Join(a.Cfg.StateDir, "candidate")) // the profile holds the GC root now
	return Result{Outcome: OutcomeApplied, Commit: commit}
}

func (a *Agent) markFirstBoot(st *state.State) {
	st.FirstBootDone = true
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

func (a *Agent) failBeforeSwitch(ctx context.Context, st *state.State, commit, stage string, err error) Result {
	st.InProgress = nil
	_ = os.Remove(filepath.Join(a.Cfg.StateDir, "candidate"))
	if errors.Is(context.Cause(ctx), errSuperseded) {
		return Result{Outcome: outcomeSuperseded, Commit: commit, Stage: stage}
	}
	st.Fail(stage)
	if !errors.Is(err, context.Canceled) {
		b := state.BadCommit{Commit: commit, Stage: stage, Error: err.Error(), Time: a.Now().UTC()}
		if stage == state.StageBuild {
			b.RetryAfter = b.Time.Add(buildRetryAfter)
		}
		st.MarkBad(b)
	}
	return Result{Outcome: OutcomeFailed, Commit: commit, Stage: stage, Err: err}
}

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
	if err := a.reactivate(context.WithoutCancel(ctx), st, st.InProgress); err != nil {
		st.Fail(state.StageRollback)
		return Result{Outcome: OutcomeRollbackFailed, Commit: commit, Stage: stage, Err: fmt.Errorf("%w; and then cannot roll back: %v", cause, err)}
	}
	return Result{Outcome: OutcomeRolledBack, Commit: commit, Stage: stage, Err: cause}
}

// reactivate puts the attempt's previous generation back: profile first,
// then its switch-to-configuration (the same action the failed attempt
// used: "boot" only re-points the boot loader).
func (a *Agent) reactivate(ctx context.Context, st *state.State, at *state.Attempt) error {
	st.Counters.Rollbacks++
	if at == nil || at.Previous == nil || at.Previous.StorePath == "" {
		st.InProgress = nil
		return errors.New("no previous generation is recorded to return to (the machine had no system profile before this commit)")
	}
	prev := *at.Previous
	mode := "switch"
	if at.Candidate != nil && at.Candidate.SwitchMode == "boot" {
		mode = "boot"
	}
	st.InProgress.Stage = state.StageRollback
	a.save(st)
	if _, err := activation.Restore(ctx, a.Cfg.Profile, activation.Generation{Number: prev.Number, StorePath: prev.StorePath}); err != nil {
		return err
	}
	t0 := a.Now()
	err := activation.Switch(ctx, prev.StorePath, mode, a.Cfg.Timeouts.Switch.D())
	a.took(st, state.StageRollback, t0)
	if err != nil {
		return err
	}
	changed, err := activation.KernelChanged(a.Cfg.BootedSystem, prev.StorePath)
	st.RebootRequired = err == nil && changed
	st.InProgress = nil
	a.Log.Info("rolled back", "generation", prev.Number, "toplevel", prev.StorePath)
	return nil
}

// recover handles a run that was killed. done means the run ends here.
func (a *Agent) recover(ctx context.Context, st *state.State) (Result, bool) {
	at := st.InProgress
	if at == nil {
		return Result{}, false
	}
	switch at.Stage {
	case state.StageEval, state.StageBuild:
		a.Log.Warn("the previous run was interrupted before it touched the system; starting over", "pid", at.PID, "stage", at.Stage, "commit", short(at.Commit))
		st.InProgress = nil
		a.save(st)
		return Result{}, false
	case state.StageProfile:
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
	if err := a.reactivate(context.WithoutCancel(ctx), st, at); err != nil {
		st.Fail(state.StageRollback)
		return Result{Outcome: OutcomeRollbackFailed, Commit: at.Commit, Stage: at.Stage, Err: fmt.Errorf("%w; and then cannot roll back: %v", cause, err)}, true
	}
	a.finish(st, Result{Outcome: OutcomeRolledBack, Commit: at.Commit, Stage: at.Stage, Err: cause})
	return Result{}, false
}

// withRetry retries fn with exponential back-off: the remote may be
// unreachable because the network is not up yet at first boot. A remote
// that refused access is not retried: only a change of settings helps.
func (a *Agent) withRetry(ctx context.Context, what string, fn func() error) error {
	wait := a.Cfg.Retry.Initial.D()
	var err error
	for i := 1; ; i++ {
		if err = fn(); err == nil || errors.Is(err, gitsource.ErrDenied) || ctx.Err() != nil || i >= a.Cfg.Retry.Attempts {
			return err
		}
		a.Log.Warn("cannot "+what+"; retrying", "attempt", i, "of", a.Cfg.Retry.Attempts, "in", wait, "err", err)
		if a.Sleep(ctx, wait) != nil {
			return err
		}
		wait = min(wait*2, a.Cfg.Retry.Max.D())
	}
}

func (a *Agent) took(st *state.State, stage string, t0 time.Time) {
	if st.Durations == nil {
		st.Durations = map[string]float64{}
	}
	st.Durations[stage] = a.Now().Sub(t0).Seconds()
}

func commitOf(g *state.Generation) string {
	if g == nil {
		return ""
	}
	return g.Commit
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
