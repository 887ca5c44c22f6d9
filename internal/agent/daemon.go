// daemon.go: `nix-gitops run`, the tick loop and the metrics endpoint.

package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/health"
	"github.com/homelab-infra/homelab-infra/internal/agent/metrics"
	"github.com/homelab-infra/homelab-infra/internal/agent/run"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// Run is the daemon: a tick every poll interval plus a random jitter, and
// metrics over HTTP on localhost. A tick that finds the lock taken (a
// manual apply) is skipped. The first SIGTERM (stop) abandons a build at
// once (nothing is lost) and lets a switch and its gate finish, since
// stopping those half-way would force a rollback; the caller cancels
// tickCtx on a second signal.
//
// After a switch (its own tick's, or another run's) to a generation that
// changed the daemon's own unit or its config file, the daemon asks systemd
// to restart it (the switch itself never restarts it:
// X-RestartIfChanged=false), so it goes on with the new binary and settings.
// A generation without the daemon's unit (daemon.enable turned off) stops it
// the same way: the switch leaves it running (X-StopOnRemoval=false, since a
// switch must never stop the run that is switching), so it stops itself once
// that run is over.
func (a *Agent) Run(stop <-chan struct{}, tickCtx context.Context) error {
	a.Stopping = stop
	// A daemon lives for months between ticks that allocate little: a
	// tighter GC target keeps its resident memory low for a few
	// microseconds of extra collection per tick (make bench shows both).
	debug.SetGCPercent(25)
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
		a.rebootRequired(st)
		a.Metrics.Set(st)
	}
	self := selfUnit{Name: health.OwnUnit(), Config: a.ConfigFile}
	started := self.fingerprint(tickCtx)
	system := a.runningSystem()
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
		// The running system changed (a switch): its unit or config may have.
		if now := a.runningSystem(); self.Name != "" && now != system {
			system = now
			if self.fingerprint(tickCtx) != started && self.replace(tickCtx, a) {
				<-stop // systemd stops this process now
				return nil
			}
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

// selfUnit is the systemd unit the daemon runs in.
type selfUnit struct {
	Name   string // "" when not started by systemd
	Config string // the agent's config file
}

// fingerprint hashes what the daemon was started with: its unit's fragment
// and drop-ins, as systemd loaded them, and the config file. Asked once at
// start and after a tick that found the running system changed, never on a
// no-op tick.
func (u selfUnit) fingerprint(ctx context.Context) string {
	if u.Name == "" {
		return ""
	}
	out, err := run.Output(ctx, run.Cmd{Name: "systemctl", Args: []string{"show", "--property=FragmentPath", "--property=DropInPaths", "--value", u.Name},
		Env: run.Environ("LC_ALL=C", "SYSTEMD_PAGER="), Timeout: 30 * time.Second})
	if err != nil {
		return "unknown"
	}
	h := sha256.New()
	for _, p := range append(strings.Fields(string(out)), u.Config) {
		b, _ := os.ReadFile(p)
		fmt.Fprintf(h, "%s\x00%x\x00", p, sha256.Sum256(b))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// replace asks systemd, without waiting, to restart the unit, or to stop it
// when the running system has no unit file for it any more (its LoadState
// is not-found); the stop reaches this process as SIGTERM. It reports
// whether systemd took the job.
func (u selfUnit) replace(ctx context.Context, a *Agent) bool {
	verb := "restart"
	out, err := run.Output(ctx, run.Cmd{Name: "systemctl", Args: []string{"show", "--property=LoadState", "--value", u.Name},
		Env: run.Environ("LC_ALL=C", "SYSTEMD_PAGER="), Timeout: 30 * time.Second})
	if err == nil && strings.TrimSpace(string(out)) == "not-found" {
		verb = "stop"
		a.Log.Info("the running system has no unit for the daemon (daemon.enable is off); stopping it", "unit", u.Name)
	} else {
		a.Log.Info("this generation changed the daemon's unit or config; restarting to run them", "unit", u.Name)
	}
	if _, err := run.Output(ctx, run.Cmd{Name: "systemctl", Args: []string{verb, "--no-block", u.Name}, Env: run.Environ("LC_ALL=C"), Timeout: 30 * time.Second}); err != nil {
		a.Log.Error("cannot "+verb+" the daemon; it goes on with the old binary and config", "err", err)
		return false
	}
	return true
}

// runningSystem is where the running system's link points ("" if unreadable).
func (a *Agent) runningSystem() string {
	p, _ := os.Readlink(a.Cfg.CurrentSystem)
	return p
}
