// secrets.go: the secrets stage's places in the pipeline (design D7):
// before the switch, from the new system's declarations (a missing secret
// stops the switch; the previous system keeps running); after the switch,
// files given to users the switch created and the units of changed secrets
// restarted, once; in the health gate ("secrets in place"); and on a tick
// that finds Git where it was, for rotations in Vault and certificate
// renewals.

package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/activation"
	"github.com/homelab-infra/homelab-infra/internal/agent/health"
	"github.com/homelab-infra/homelab-infra/internal/agent/metrics"
	"github.com/homelab-infra/homelab-infra/internal/agent/secrets"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// secretsStage adapts secrets.Stage to the pipeline. It remembers, from
// before the switch to after it, the declarations and what changed.
type secretsStage struct {
	a     *Agent
	stage *secrets.Stage
	file  *secrets.File
	res   secrets.Result
}

func (a *Agent) addSecrets() {
	s := &secretsStage{a: a, stage: &secrets.Stage{
		StateDir: a.Cfg.StateDir, Units: secrets.Systemctl{}, Log: a.Log, Now: a.Now, Backoff: a.backoff(),
	}}
	a.secrets = s
	a.PreSwitch = append(a.PreSwitch, s)
	a.AfterSwitch = append(a.AfterSwitch, afterSwitch{s})
	a.Probes = append(a.Probes, health.Probe{Name: "secrets in place", Run: func(context.Context) error {
		if s.file == nil {
			return nil
		}
		return secrets.Check(s.file, a.Now())
	}})
}

// Name implements Stage.
func (s *secretsStage) Name() string { return state.StageSecrets }

// Run implements Stage: every secret the new system declares is fetched
// and in place before its switch. Broken declarations are the commit's
// fault; Vault's answers are not (Temporary: tried again after a back-off).
func (s *secretsStage) Run(ctx context.Context, c Candidate) error {
	s.file, s.res = nil, secrets.Result{}
	f, ok, err := secrets.ForToplevel(c.Toplevel)
	if err != nil || !ok {
		return err
	}
	res, err := s.stage.Refresh(ctx, f, secretsState(c.State))
	if err != nil {
		return Temporary(err)
	}
	s.file, s.res = f, res
	return nil
}

// afterSwitch is the secrets stage's part after the switch.
type afterSwitch struct{ s *secretsStage }

func (a afterSwitch) Name() string { return state.StageSecrets }

func (a afterSwitch) Run(ctx context.Context, c Candidate) error {
	if a.s.file == nil {
		return nil
	}
	return a.s.stage.Finish(ctx, a.s.file, a.s.res, secretsState(c.State))
}

func secretsState(st *state.State) *state.Secrets {
	if st.Secrets == nil {
		st.Secrets = &state.Secrets{}
	}
	return st.Secrets
}

// refreshSecrets runs the stage for the applied system on a run that found
// nothing new in Git. A failure fails the run (the status and metrics say
// why); the files stay as the last good run left them.
func (a *Agent) refreshSecrets(ctx context.Context, st *state.State, res Result) Result {
	if err := a.refreshApplied(ctx, st); err != nil {
		st.Fail(state.StageSecrets)
		return Result{Outcome: OutcomeFailed, Commit: res.Commit, Stage: state.StageSecrets, Err: err}
	}
	return res
}

func (a *Agent) refreshApplied(ctx context.Context, st *state.State) error {
	toplevel := ""
	if st.Applied != nil {
		toplevel = st.Applied.StorePath
	} else if g, ok, err := activation.Current(a.Cfg.Profile); err == nil && ok {
		toplevel = g.StorePath
	}
	if toplevel == "" {
		return nil
	}
	f, ok, err := secrets.ForToplevel(toplevel)
	if err != nil {
		return err
	}
	if !ok {
		if st.Secrets != nil && len(st.Secrets.Items) > 0 {
			a.secrets.stage.Prune(&secrets.File{}, st.Secrets)
		}
		return nil
	}
	t0 := a.Now()
	s := a.secrets.stage
	r, err := s.Refresh(ctx, f, secretsState(st))
	if err == nil {
		err = s.Finish(ctx, f, r, secretsState(st))
	}
	if err == nil {
		s.Prune(f, secretsState(st))
	}
	a.took(st, state.StageSecrets, t0)
	return err
}

// RefreshSecrets is `nix-gitops secrets`: the applied system's secrets,
// fetched and put in place, without looking at Git (the boot-time unit:
// tmpfs is empty after a reboot).
func (a *Agent) RefreshSecrets(ctx, lockCtx context.Context) error {
	lock, st, err := a.prepare(lockCtx)
	if err != nil {
		return err
	}
	defer lock.Release()
	err = a.refreshApplied(ctx, st)
	a.save(st)
	if a.Cfg.Metrics.Textfile != "" {
		if werr := metrics.WriteTextfile(a.Cfg.Metrics.Textfile, st); werr != nil {
			a.Log.Error("cannot write the metrics textfile", "err", werr)
		}
	}
	if err != nil {
		return fmt.Errorf("cannot put the secrets in place: %w", err)
	}
	a.Log.Info("secrets in place", "declared", len(secretsState(st).Items), "state", filepath.Join(a.Cfg.StateDir, state.FileName))
	return nil
}

// writeSecrets adds the secrets stage to `nix-gitops status`.
func writeSecrets(p func(k, v string), s *state.Secrets) {
	if s == nil {
		return
	}
	last := "ok"
	if s.Error != "" {
		last = "failed: " + oneLine(s.Error)
	}
	p("secrets", fmt.Sprintf("%d declared, last run %s (%s), vault reachable %v, token expires %s",
		len(s.Items), last, s.LastRun.Format(time.RFC3339), s.VaultReachable, s.TokenExpires.Format(time.RFC3339)))
	for _, name := range sortedItems(s.Items) {
		it := s.Items[name]
		v := it.Source + " → " + it.Path
		if it.Version > 0 {
			v += fmt.Sprintf(" (version %d)", it.Version)
		}
		if !it.NotAfter.IsZero() {
			v += " (expires " + it.NotAfter.Format(time.RFC3339) + ")"
		}
		if it.Error != "" {
			v += ": " + oneLine(it.Error)
		}
		p("secret "+name, v)
	}
}

func sortedItems(m map[string]state.SecretItem) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
