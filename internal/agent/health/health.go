// Package health is the gate a new generation must pass after its switch,
// or it is rolled back: systemd's overall state, required units, TCP and
// HTTP probes, a user script, and whether git is still reachable (a switch
// that breaks the network would otherwise never see its fix).
//
// Checks that see a service still starting retry until the settle time is
// up. Where systemd is not PID 1 (a container, a test), the systemd checks
// report "skipped: no systemd" and the others still run.
package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/run"
)

// Systemd is what the gate asks systemd. The real one runs systemctl; tests
// of the gate's logic use a fake of this interface (the one fake the issue
// allows on this side besides the stand-in toplevel).
type Systemd interface {
	// Booted reports whether systemd is PID 1 (sd_booted).
	Booted() bool
	// SystemState is `systemctl is-system-running`'s answer.
	SystemState(ctx context.Context) (string, error)
	// UnitState is `systemctl is-active UNIT`'s answer.
	UnitState(ctx context.Context, unit string) (string, error)
	// FailedUnits lists failed units.
	FailedUnits(ctx context.Context) ([]string, error)
	// Jobs lists the queued jobs (`systemctl list-jobs`).
	Jobs(ctx context.Context) ([]Job, error)
}

// Job is one queued systemd job.
type Job struct {
	Unit  string
	State string // running or waiting
}

// Systemctl is the real Systemd.
type Systemctl struct{}

// Booted checks for /run/systemd/system, as sd_booted(3) does.
func (Systemctl) Booted() bool {
	fi, err := os.Lstat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

func systemctl(ctx context.Context, args ...string) (string, error) {
	out, err := run.Output(ctx, run.Cmd{Name: "systemctl", Args: args, Env: run.Environ("LC_ALL=C", "SYSTEMD_PAGER="), Timeout: 30 * time.Second})
	s := strings.TrimSpace(string(out))
	var re *run.Error
	if errors.As(err, &re) && re.ExitCode() > 0 && s != "" {
		return s, nil // is-active and is-system-running answer with a non-zero status
	}
	return s, err
}

// SystemState implements Systemd.
func (Systemctl) SystemState(ctx context.Context) (string, error) {
	return systemctl(ctx, "is-system-running")
}

// UnitState implements Systemd.
func (Systemctl) UnitState(ctx context.Context, unit string) (string, error) {
	return systemctl(ctx, "is-active", "--", unit)
}

// FailedUnits implements Systemd.
func (Systemctl) FailedUnits(ctx context.Context) ([]string, error) {
	out, err := systemctl(ctx, "list-units", "--failed", "--plain", "--no-legend", "--no-pager")
	var units []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			units = append(units, f[0])
		}
	}
	return units, err
}

// Jobs implements Systemd.
func (Systemctl) Jobs(ctx context.Context) ([]Job, error) {
	out, err := systemctl(ctx, "list-jobs", "--plain", "--no-legend", "--no-pager")
	var jobs []Job
	for _, l := range strings.Split(out, "\n") {
		// JOB UNIT TYPE STATE
		if f := strings.Fields(l); len(f) >= 4 {
			jobs = append(jobs, Job{Unit: f[1], State: f[3]})
		}
	}
	return jobs, err
}

// OwnUnit returns the systemd unit this process runs in, from its cgroup
// ("0::/system.slice/nix-gitops-apply.service"), or "".
func OwnUnit() string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3) // "0::/path" (v2) or "1:name=systemd:/path" (v1)
		if len(f) != 3 {
			continue
		}
		for _, part := range strings.Split(f[2], "/") {
			if strings.HasSuffix(part, ".service") {
				return part
			}
		}
	}
	return ""
}

// Gate is the configured set of checks.
type Gate struct {
	Systemd Systemd
	// OwnUnit is the unit the agent runs in (see OwnUnit()), whose own
	// start job must not hold the gate.
	OwnUnit       string
	CheckSystemd  bool
	RequiredUnits []string
	TCP           []string
	HTTP          []string
	Script        string
	// GitReachable, when set, must succeed (the agent passes its poll).
	GitReachable func(ctx context.Context) error
	// Probes are more checks, each run once (the agent's secrets in place).
	Probes []Probe
	// Settle is how long checks retry while things are still starting.
	Settle time.Duration
	// Interval between retries [1s].
	Interval time.Duration
}

// Probe is a named check of the gate's caller.
type Probe struct {
	Name string
	Run  func(ctx context.Context) error
}

// Check is one check's result.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"` // ok, failed or skipped
	Detail string `json:"detail,omitempty"`
}

// Report is the gate's result.
type Report []Check

// Err is nil when no check failed; otherwise it lists the failures.
func (r Report) Err() error {
	var bad []string
	for _, c := range r {
		if c.Status == "failed" {
			bad = append(bad, c.Name+": "+c.Detail)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("health gate failed: %s", strings.Join(bad, "; "))
}

// errRetry marks a check result that may still change (starting).
type errRetry struct{ error }

// Run runs every check (until ctx is done) and reports each.
func (g *Gate) Run(ctx context.Context) Report {
	var r Report
	add := func(name string, fn func(context.Context) error) {
		r = append(r, g.retry(ctx, name, fn))
	}
	skip := func(name, why string) { r = append(r, Check{Name: name, Status: "skipped", Detail: why}) }
	booted := g.Systemd != nil && g.Systemd.Booted()
	if g.CheckSystemd {
		if booted {
			add("systemd", g.system)
		} else {
			skip("systemd", "skipped: no systemd")
		}
	}
	for _, u := range g.RequiredUnits {
		if booted {
			add("unit "+u, func(ctx context.Context) error { return g.unit(ctx, u) })
		} else {
			skip("unit "+u, "skipped: no systemd")
		}
	}
	for _, a := range g.TCP {
		add("tcp "+a, func(ctx context.Context) error { return tcp(ctx, a) })
	}
	for _, u := range g.HTTP {
		add("http "+u, func(ctx context.Context) error { return probeHTTP(ctx, u) })
	}
	if g.Script != "" {
		add("script "+g.Script, g.script)
	}
	for _, p := range g.Probes {
		add(p.Name, p.Run)
	}
	if g.GitReachable != nil {
		add("git reachable", func(ctx context.Context) error {
			if err := g.GitReachable(ctx); err != nil {
				return errRetry{err}
			}
			return nil
		})
	}
	return r
}

func (g *Gate) retry(ctx context.Context, name string, fn func(context.Context) error) Check {
	interval := g.Interval
	if interval <= 0 {
		interval = time.Second
	}
	deadline := time.Now().Add(g.Settle)
	for {
		err := fn(ctx)
		if err == nil {
			return Check{Name: name, Status: "ok"}
		}
		var re errRetry
		if !errors.As(err, &re) || time.Now().Add(interval).After(deadline) {
			return Check{Name: name, Status: "failed", Detail: err.Error()}
		}
		select {
		case <-ctx.Done():
			return Check{Name: name, Status: "failed", Detail: err.Error() + " (" + ctx.Err().Error() + ")"}
		case <-time.After(interval):
		}
	}
}

func (g *Gate) system(ctx context.Context) error {
	s, err := g.Systemd.SystemState(ctx)
	if err != nil {
		return fmt.Errorf("cannot ask systemd: %w", err)
	}
	switch s {
	case "running":
		return nil
	case "initializing", "starting":
		return g.starting(ctx, s)
	case "degraded":
		failed, _ := g.Systemd.FailedUnits(ctx)
		return errRetry{fmt.Errorf("system is degraded; failed units: %s", strings.Join(failed, ", "))}
	default:
		return fmt.Errorf("system is %s", s)
	}
}

// starting decides a boot that has not finished. At first boot the agent
// runs inside its own oneshot start job, and systemd calls the boot
// finished only once the job queue is empty: is-system-running says
// "starting" for as long as the agent runs, so waiting for "running" can
// only time out. The boot counts as settled when no unit failed and no job
// other than the agent's own is running (the jobs still waiting are
// waiting, directly or not, for the agent).
func (g *Gate) starting(ctx context.Context, s string) error {
	failed, err := g.Systemd.FailedUnits(ctx)
	if err != nil {
		return errRetry{fmt.Errorf("system is %s; cannot list failed units: %w", s, err)}
	}
	if len(failed) > 0 {
		return errRetry{fmt.Errorf("system is %s; failed units: %s", s, strings.Join(failed, ", "))}
	}
	jobs, err := g.Systemd.Jobs(ctx)
	if err != nil {
		return errRetry{fmt.Errorf("system is %s; cannot list jobs: %w", s, err)}
	}
	var others []string
	for _, j := range jobs {
		if j.State == "running" && j.Unit != g.OwnUnit {
			others = append(others, j.Unit)
		}
	}
	if len(others) > 0 {
		return errRetry{fmt.Errorf("system is %s; jobs still running: %s", s, strings.Join(others, ", "))}
	}
	return nil
}

func (g *Gate) unit(ctx context.Context, u string) error {
	s, err := g.Systemd.UnitState(ctx, u)
	if err != nil {
		return fmt.Errorf("cannot ask systemd: %w", err)
	}
	if s == "active" {
		return nil
	}
	// activating, reloading, inactive (not started yet) or failed (may be
	// restarted): all can still change while the system settles.
	return errRetry{fmt.Errorf("%s is %s", u, s)}
}

func tcp(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return errRetry{err}
	}
	return c.Close()
}

func probeHTTP(ctx context.Context, u string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return errRetry{err}
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errRetry{fmt.Errorf("HTTP %d", resp.StatusCode)}
	}
	return nil
}

func (g *Gate) script(ctx context.Context) error {
	_, err := run.Output(ctx, run.Cmd{Name: g.Script, Env: run.Environ(), Timeout: g.Settle + time.Minute})
	return err
}
