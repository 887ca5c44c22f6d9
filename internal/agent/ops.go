package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/activation"
	"github.com/homelab-infra/homelab-infra/internal/agent/config"
	"github.com/homelab-infra/homelab-infra/internal/agent/metrics"
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
		err = activation.Switch(ctx, to.StorePath, mode, a.Cfg.Timeouts.Switch.D())
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
	changed, kerr := activation.KernelChanged(a.Cfg.BootedSystem, to.StorePath)
	st.RebootRequired = kerr == nil && changed
	a.finish(st, res)
	return res, nil
}

// Status is what `nix-gitops status --json` prints: the state plus what
// the agent follows and what the profile points to now.
type Status struct {
	Target  string            `json:"target"`
	Profile *state.Generation `json:"profile,omitempty"`
	*state.State
}

// ReadStatus reads the state without taking the lock: state.json is
// replaced atomically, so a reader always sees a whole file. It needs no
// flake target: status works before cloud-init wrote one.
func ReadStatus(cfg config.Config) (Status, error) {
	st, err := state.Load(cfg.StateDir)
	if err != nil {
		return Status{}, err
	}
	s := Status{State: st}
	if t, err := cfg.Target(); err == nil {
		s.Target = t.String()
	} else {
		s.Target = "unknown: " + err.Error()
	}
	if g, ok, err := activation.Current(cfg.Profile); err == nil && ok {
		s.Profile = &state.Generation{Number: g.Number, StorePath: g.StorePath}
	}
	return s, nil
}

// WriteStatus prints s for people.
func WriteStatus(w io.Writer, s Status) {
	p := func(k, v string) { fmt.Fprintf(w, "%-16s %s\n", k+":", v) }
	p("target", s.Target)
	if s.Applied != nil {
		p("applied", fmt.Sprintf("%s (generation %d, %s, %s)", s.Applied.Commit, s.Applied.Number, s.Applied.SwitchMode, s.Applied.Time.Format(time.RFC3339)))
	} else {
		p("applied", "nothing yet")
	}
	if s.Profile != nil {
		p("profile", fmt.Sprintf("generation %d → %s", s.Profile.Number, s.Profile.StorePath))
	}
	if s.RemoteHead != "" {
		p("remote head", s.RemoteHead)
	}
	if s.Last != nil {
		last := s.Last.Outcome
		if s.Last.Stage != "" {
			last += " at " + s.Last.Stage
		}
		p("last run", last+" ("+s.Last.Time.Format(time.RFC3339)+")")
		if s.Last.Error != "" {
			p("last error", s.Last.Error)
		}
	}
	if s.InProgress != nil {
		p("in progress", fmt.Sprintf("%s of %s (pid %d, since %s)", s.InProgress.Stage, s.InProgress.Commit, s.InProgress.PID, s.InProgress.Started.Format(time.RFC3339)))
	}
	p("reboot required", fmt.Sprint(s.RebootRequired))
	for _, b := range s.BadCommits {
		p("bad commit", fmt.Sprintf("%s (%s: %s)", b.Commit, b.Stage, oneLine(b.Error)))
	}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Run is the daemon: a tick every poll interval plus a random jitter, and
// metrics over HTTP on localhost. A tick that finds the lock taken (a
// manual apply) is skipped. The first SIGTERM (stop) lets a running tick
// finish, since killing a switch half-way would force a rollback; the
// caller cancels tickCtx on a second signal.
func (a *Agent) Run(stop <-chan struct{}, tickCtx context.Context) error {
	if addr := a.Cfg.Metrics.Listen; addr != "" && addr != "off" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("cannot serve metrics on %s: %w", addr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics.Handler(a.Metrics))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		a.Log.Info("serving metrics", "addr", ln.Addr().String())
	}
	a.Daemon = true
	if st, err := state.Load(a.Cfg.StateDir); err == nil {
		a.Metrics.Set(st)
	}
	for {
		done, cancel := context.WithCancel(context.Background())
		cancel() // an already-done lock context: never wait for a manual run
		_, err := a.Apply(tickCtx, done)
		switch {
		case errors.Is(err, state.ErrBusy):
			a.Log.Info("another run holds the lock; skipping this tick")
		case err != nil:
			a.Log.Error("tick failed", "err", err)
		}
		wait := a.Cfg.Poll.Interval.D()
		if j := a.Cfg.Poll.Jitter.D(); j > 0 {
			wait += rand.N(j)
		}
		select {
		case <-stop:
			return nil
		case <-time.After(wait):
		}
	}
}
