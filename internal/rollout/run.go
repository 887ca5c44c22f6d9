// run.go: carrying out a plan. Wave by wave: stop at a gate not approved;
// check that every machine of the wave has a fresh verdict; advance them,
// Parallelism at a time, each waiting for its verdict on the target; stop
// starting machines at the first failure; soak after the canary; then the
// reboots, one at a time, behind their own gate.

package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// VerdictSource is where verdicts come from (Prometheus).
type VerdictSource interface {
	Verdicts(ctx context.Context, hosts []string) (map[string]Verdict, error)
	Running(ctx context.Context, hosts []string) (map[string]Run, error)
	Firing(ctx context.Context, hosts []string) ([]string, error)
}

// Driver carries out plans.
type Driver struct {
	Git      *Git
	Verdicts VerdictSource
	// Approved are the gates a person approved for this run ("dns",
	// "reboot").
	Approved map[string]bool
	Log      *slog.Logger
	// Poll is how often a waiting machine's verdict is read [10s].
	Poll time.Duration
}

// Outcomes of a run.
const (
	Completed = "completed" // every machine converged on the target
	Halted    = "halted"    // a machine failed, went stale, or an alert fired
	Gated     = "gated"     // stopped at a gate nobody approved (yet)
)

// Report is what a run did: what it advanced, where it stopped and why, and
// what it left alone.
type Report struct {
	Target  string `json:"target"`
	Outcome string `json:"outcome"`
	// Advanced are the machines whose deploy ref the run moved, with their
	// verdicts.
	Advanced []Verdict `json:"advanced,omitempty"`
	// Failed names the machine that halted the run, and why.
	Failed *Failure `json:"failed,omitempty"`
	// Gate is the gate the run stopped at, and why it is there.
	Gate       string `json:"gate,omitempty"`
	GateReason string `json:"gateReason,omitempty"`
	// Pending are the machines the run did not reach: their refs and
	// commits are as they were.
	Pending []string `json:"pending,omitempty"`
	// Reboots are the machines that rebooted into the target; RebootPending
	// those that wait for a reboot.
	Reboots       []string `json:"reboots,omitempty"`
	RebootPending []string `json:"rebootPending,omitempty"`
}

// Failure is why a run halted.
type Failure struct {
	Host   string `json:"host,omitempty"`
	Reason string `json:"reason"`
}

// Run carries out p.
func (d *Driver) Run(ctx context.Context, p Plan) Report {
	r := Report{Target: p.Target, Outcome: Completed}
	for i, w := range p.Waves {
		rest := func() []string { return Plan{Waves: p.Waves[i:]}.Hosts() }
		if w.Gate != "" && !d.Approved[w.Gate] {
			r.Outcome, r.Gate, r.GateReason, r.Pending = Gated, w.Gate, w.GateReason, rest()
			return r
		}
		var hosts []string
		for _, m := range w.Hosts {
			hosts = append(hosts, m.Host)
		}
		if f := d.Preflight(ctx, p, hosts); f != nil {
			r.Outcome, r.Failed, r.Pending = Halted, f, rest()
			return r
		}
		done, f := d.wave(ctx, p, w)
		r.Advanced = append(r.Advanced, done...)
		if f != nil {
			var left []string
			for _, h := range rest() {
				if !slices.ContainsFunc(done, func(v Verdict) bool { return v.Host == h }) {
					left = append(left, h)
				}
			}
			r.Outcome, r.Failed, r.Pending = Halted, f, left
			return r
		}
		if w.Canary && p.Policy.Soak > 0 && i < len(p.Waves)-1 {
			if f := d.Soak(ctx, p, hosts); f != nil {
				r.Outcome, r.Failed, r.Pending = Halted, f, Plan{Waves: p.Waves[i+1:]}.Hosts()
				return r
			}
		}
	}
	pending, err := d.PendingReboots(ctx, p)
	if err != nil {
		r.Outcome, r.Failed = Halted, &Failure{Reason: err.Error()}
		return r
	}
	r.RebootPending = pending
	if len(r.RebootPending) == 0 {
		return r
	}
	if p.Policy.Gates.Reboot && !d.Approved[GateReboot] {
		r.Outcome, r.Gate, r.GateReason = Gated, GateReboot, strings.Join(r.RebootPending, ", ")+" wait for a reboot into "+short(p.Target)
		return r
	}
	// One at a time: the next machine reboots once the last is back and
	// converged.
	for len(r.RebootPending) > 0 {
		h := r.RebootPending[0]
		v, f := d.Reboot(ctx, p, h)
		if f != nil {
			r.Outcome, r.Failed = Halted, f
			return r
		}
		r.RebootPending = r.RebootPending[1:]
		r.Reboots = append(r.Reboots, h)
		for i := range r.Advanced {
			if r.Advanced[i].Host == h {
				r.Advanced[i] = v
			}
		}
	}
	return r
}

// Status reports where a plan's machines are, for a workflow's exit handler:
// advanced (their deploy ref at the target, with their verdicts), pending
// (not), those waiting for their reboot, and the machine that halted the
// rollout: the first whose verdict on the target is a failure, or else the
// first pending one without a fresh verdict.
func (d *Driver) Status(ctx context.Context, p Plan) (Report, error) {
	r := Report{Target: p.Target}
	refs, err := d.Git.Refs(ctx, "deploy")
	if err != nil {
		return r, err
	}
	hosts := p.Hosts()
	for _, s := range p.Skipped {
		if s.Reason == reasonAtTarget {
			hosts = append(hosts, s.Host)
		}
	}
	slices.Sort(hosts)
	vs, err := d.Verdicts.Verdicts(ctx, hosts)
	if err != nil {
		return r, err
	}
	for _, h := range hosts {
		switch v := vs[h]; {
		case refs[h] != p.Target:
			r.Pending = append(r.Pending, h)
		case v.Host == "":
			r.Advanced = append(r.Advanced, Verdict{Host: h, State: "unknown"})
		default:
			r.Advanced = append(r.Advanced, v)
			if v.Commit == p.Target && v.State == "pending-reboot" {
				r.RebootPending = append(r.RebootPending, h)
			}
			if v.Commit == p.Target && failedState(v.State) && r.Failed == nil {
				r.Failed = &Failure{Host: h, Reason: failureReason(v.State, p.Target, h)}
			}
		}
	}
	if r.Failed == nil && len(r.Pending) > 0 {
		// A machine left behind without a fresh verdict halted it.
		r.Failed = d.Preflight(ctx, p, r.Pending)
	}
	return r, nil
}

// failedState: a verdict that halts a rollout.
func failedState(s string) bool { return s == "rolled-back" || s == "failed" || s == "refused" }

func failureReason(state, target, host string) string {
	return fmt.Sprintf("%s on %s: see `nix-gitops status` and the journal on %s", state, short(target), host)
}

// Soak lets the canary run for the policy's soak, then halts on any alert
// firing for it.
func (d *Driver) Soak(ctx context.Context, p Plan, hosts []string) *Failure {
	d.log().Info("soaking the canary", "hosts", hosts, "for", p.Policy.Soak.D())
	if err := sleep(ctx, p.Policy.Soak.D()); err != nil {
		return &Failure{Reason: "stopped during the soak: " + err.Error()}
	}
	firing, err := d.Verdicts.Firing(ctx, hosts)
	switch {
	case err != nil:
		return &Failure{Host: hosts[0], Reason: "cannot read the canary's alerts: " + err.Error()}
	case len(firing) > 0:
		return &Failure{Host: hosts[0], Reason: "alerts firing on the canary after its soak: " + strings.Join(firing, ", ")}
	}
	return nil
}

// PendingReboots lists the plan's machines that wait for a reboot into the
// target: advanced now, or by an earlier run that stopped at the reboot gate.
func (d *Driver) PendingReboots(ctx context.Context, p Plan) ([]string, error) {
	cands := p.Hosts()
	for _, s := range p.Skipped {
		if s.Reason == reasonAtTarget {
			cands = append(cands, s.Host)
		}
	}
	if len(cands) == 0 {
		return nil, nil
	}
	vs, err := d.Verdicts.Verdicts(ctx, cands)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, h := range cands {
		if v := vs[h]; v.Commit == p.Target && v.State == "pending-reboot" {
			out = append(out, h)
		}
	}
	return out, nil
}

// Preflight: every machine of a wave has a fresh verdict before any of them
// moves. Unknown is not healthy.
func (d *Driver) Preflight(ctx context.Context, p Plan, hosts []string) *Failure {
	vs, err := d.Verdicts.Verdicts(ctx, hosts)
	if err != nil {
		return &Failure{Reason: err.Error()}
	}
	for _, h := range hosts {
		v, ok := vs[h]
		switch {
		case !ok:
			return &Failure{Host: h, Reason: "no verdict in Prometheus: its agent is not running, or not scraped"}
		case v.Age > p.Policy.StaleAfter.D():
			return &Failure{Host: h, Reason: fmt.Sprintf("stale verdict: its agent last looked at Git %s ago (staleAfter %s)", v.Age.Round(time.Second), p.Policy.StaleAfter.D())}
		}
	}
	return nil
}

// wave advances a wave's machines, Parallelism at a time, and stops
// starting new ones at the first failure (the ones in flight finish).
func (d *Driver) wave(ctx context.Context, p Plan, w Wave) ([]Verdict, *Failure) {
	var (
		mu     sync.Mutex
		done   []Verdict
		failed *Failure
		wg     sync.WaitGroup
	)
	slots := make(chan struct{}, p.Policy.Parallelism)
	for _, m := range w.Hosts {
		slots <- struct{}{}
		mu.Lock()
		stop := failed != nil
		mu.Unlock()
		if stop {
			<-slots
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			v, f := d.Host(ctx, p, m.Host)
			mu.Lock()
			defer mu.Unlock()
			if f != nil && failed == nil {
				failed = f
			}
			if f == nil || v.Host != "" {
				done = append(done, v)
			}
		}()
	}
	wg.Wait()
	slices.SortFunc(done, func(a, b Verdict) int { return strings.Compare(a.Host, b.Host) })
	return done, failed
}

// Host moves one machine's deploy ref to the plan's target and waits for
// its verdict on it: converged (or pending-reboot) within the host budget.
// The returned verdict has a Host when the ref was moved.
func (d *Driver) Host(ctx context.Context, p Plan, host string) (Verdict, *Failure) {
	if err := d.advance(ctx, "deploy", host, p.Target); err != nil {
		return Verdict{}, &Failure{Host: host, Reason: err.Error()}
	}
	d.log().Info("advanced", "host", host, "to", short(p.Target))
	return d.await(ctx, p, host, func(v Verdict) bool { return v.State == "converged" || v.State == "pending-reboot" })
}

// Reboot approves one machine's reboot into the target (reboot/<host>) and
// waits for it to come back converged.
func (d *Driver) Reboot(ctx context.Context, p Plan, host string) (Verdict, *Failure) {
	if err := d.advance(ctx, "reboot", host, p.Target); err != nil {
		return Verdict{}, &Failure{Host: host, Reason: err.Error()}
	}
	d.log().Info("approved a reboot", "host", host, "into", short(p.Target))
	return d.await(ctx, p, host, func(v Verdict) bool { return v.State == "converged" })
}

// advance moves kind/host to target: only forward, only to a commit on the
// branch (Load checked the target), never over a ref the remote moved since.
func (d *Driver) advance(ctx context.Context, kind, host, target string) error {
	refs, err := d.Git.Refs(ctx, kind)
	if err != nil {
		return err
	}
	from := refs[host]
	if from == target {
		return nil
	}
	if from != "" {
		ok, err := d.Git.IsAncestor(ctx, from, target)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s/%s is at %s, which %s does not descend from: a rollout never moves a ref backwards or sideways", kind, host, short(from), short(target))
		}
	}
	return d.Git.Advance(ctx, kind, host, target)
}

// await polls a machine's verdict until ok says it is done, it reports a
// failure on the target, or the budget (or staleness) runs out.
func (d *Driver) await(ctx context.Context, p Plan, host string, ok func(Verdict) bool) (Verdict, *Failure) {
	deadline := time.Now().Add(p.Policy.HostBudget.D())
	var missingSince time.Time
	last := Verdict{Host: host}
	for {
		vs, err := d.Verdicts.Verdicts(ctx, []string{host})
		v, found := vs[host]
		switch {
		case err != nil:
			d.log().Warn("cannot read the verdict; trying again", "host", host, "err", err)
		case found && v.Age > p.Policy.StaleAfter.D():
			return v, &Failure{Host: host, Reason: fmt.Sprintf("stale verdict: its agent last looked at Git %s ago (staleAfter %s)", v.Age.Round(time.Second), p.Policy.StaleAfter.D())}
		case !found:
			// A scrape may be missed; an agent gone for staleAfter is stale.
			if missingSince.IsZero() {
				missingSince = time.Now()
			}
			if time.Since(missingSince) > p.Policy.StaleAfter.D() {
				return last, &Failure{Host: host, Reason: fmt.Sprintf("no verdict in Prometheus for %s: its agent stopped reporting", p.Policy.StaleAfter.D())}
			}
		default:
			missingSince = time.Time{}
			last = v
			if v.Commit == p.Target {
				if ok(v) {
					return v, nil
				}
				if failedState(v.State) {
					return v, &Failure{Host: host, Reason: failureReason(v.State, p.Target, host)}
				}
			}
		}
		if time.Now().After(deadline) {
			return last, &Failure{Host: host, Reason: fmt.Sprintf("no verdict on %s within hostBudget %s (last: %s %s)", short(p.Target), p.Policy.HostBudget.D(), last.State, short(last.Commit))}
		}
		if err := sleep(ctx, d.poll()); err != nil {
			return last, &Failure{Host: host, Reason: "stopped while waiting: " + err.Error()}
		}
	}
}

func (d *Driver) poll() time.Duration {
	if d.Poll > 0 {
		return d.Poll
	}
	return 10 * time.Second
}

func (d *Driver) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}

func sleep(ctx context.Context, t time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(t):
		return nil
	}
}
