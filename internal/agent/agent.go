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
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
	OutcomeApplied = "applied"
	// OutcomePendingReboot: applied with "boot" (a kernel, init or switch
	// inhibitor change); it runs, and is health-gated, after the reboot.
	OutcomePendingReboot = "pending-reboot"
	OutcomeUpToDate      = "up-to-date"
	OutcomeRolledBack    = "rolled-back"
	// OutcomeRolledBackDegraded: rolled back, but switching back to the
	// previous generation left a unit failed (switch-to-configuration
	// exit 4). The previous generation runs; the machine needs a look.
	OutcomeRolledBackDegraded = "rolled-back-degraded"
	OutcomeFailed             = "failed"  // before the switch; the system is untouched
	OutcomeRefused            = "refused" // non-fast-forward, signature, or older than the floor
	OutcomeSkippedBad         = "skipped-bad-commit"
	OutcomeRollbackFailed     = "rollback-failed"
	// OutcomeWaitingForRef: rollout mode, and the deploy ref does not
	// exist although the machine has applied a commit (state.Verdict).
	OutcomeWaitingForRef = "waiting-for-ref"
)

// ExitCode maps a run's result to `nix-gitops apply`'s exit status.
func ExitCode(r Result) int {
	switch r.Outcome {
	case OutcomeApplied, OutcomePendingReboot:
		return units.ExitApplied
	case OutcomeUpToDate:
		return units.ExitUpToDate
	case OutcomeRolledBack:
		return units.ExitRolledBack
	case OutcomeRolledBackDegraded:
		return units.ExitRolledBackDegraded
	case OutcomeRollbackFailed:
		return units.ExitRollbackFailed
	}
	if r.Temporary {
		return units.ExitRetry
	}
	return units.ExitFailedBeforeSwitch
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
	Switch  activation.Switcher
	// PreSwitch are the stages run, in order, after the build and before
	// the profile moves (see Stage).
	PreSwitch []Stage
	// AfterSwitch run after a successful switch, before the health gate.
	AfterSwitch []Stage
	// Probes are more checks of the health gate.
	Probes []health.Probe
	// secrets is the secrets stage (secrets.go).
	secrets *secretsStage

	// Per run options.
	FirstBoot bool // started by the boot-time unit
	RetryBad  bool // try the head even if it is remembered as bad
	Now       func() time.Time
	// Sleep waits between retries (tests shorten it).
	Sleep func(ctx context.Context, d time.Duration) error
	// Daemon is set by Run: state survives between ticks in memory.
	Daemon bool
	// Stopping, when closed, abandons eval and build (nothing on the machine
	// has changed yet), but lets a switch, its gate or a rollback finish.
	Stopping <-chan struct{}
	// ConfigFile is the config file the agent read (the daemon restarts
	// when a switch changed it).
	ConfigFile string

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
	git := &gitsource.Source{Ref: target, Clone: filepath.Join(cfg.StateDir, "repo.git"), Auth: cfg.Auth,
		Timeout: cfg.Timeouts.Fetch.D(), Self: self, Log: log, Method: cfg.Poll.Method}
	a := &Agent{
		Cfg:     cfg,
		Target:  target,
		Log:     log,
		Git:     git,
		Nix:     &nixbuild.Nix{CacheDir: filepath.Join(cfg.StateDir, "cache"), GitEnv: git.Env()},
		Systemd: health.Systemctl{},
		Metrics: &metrics.Collector{},
		// The switch runs in a transient unit wherever systemd runs the
		// machine; elsewhere (tests, containers) as the agent's child.
		Switch: activation.Switcher{Transient: health.Systemctl{}.Booted(), Log: log},
		Now:    time.Now,
		Sleep:  sleepCtx,
	}
	a.addSecrets()
	return a, nil
}

// Result is what one run did.
type Result struct {
	Outcome string
	Commit  string
	Stage   string
	Err     error
	// Temporary: the failure's cause is outside the commit (the network, a
	// timeout, a killed build); it is retried after a back-off.
	Temporary bool
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
	if !quiet {
		a.rebootRequired(st)
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

// FirstBootDone reports whether the machine has converged once (read after
// a run).
func (a *Agent) FirstBootDone() bool { return a.cached != nil && a.cached.FirstBootDone }

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
