//go:build rollout

package rollout

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/rollout"
	"github.com/homelab-infra/homelab-infra/internal/runningstate"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// booted makes host's running system its booted one, as after a boot.
func (f *fleet) booted(h string) {
	f.t.Helper()
	cur, err := filepath.EvalSymlinks(filepath.Join(f.dir, "rec", h, "current-system"))
	if err != nil {
		f.t.Fatal(err)
	}
	link := filepath.Join(f.dir, "agents", h, "booted-system")
	_ = os.Remove(link)
	if err := os.Symlink(cur, link); err != nil {
		f.t.Fatal(err)
	}
}

func converged(c string, hosts ...string) map[string]rollout.Verdict {
	m := map[string]rollout.Verdict{}
	for _, h := range hosts {
		m[h] = rollout.Verdict{Commit: c, State: "converged"}
	}
	return m
}

// TestRollout runs one fleet through the rollouts the design promises, in
// order: each step starts from the state the last one left.
func TestRollout(t *testing.T) {
	// Beside TestArgo (which says why it may).
	t.Parallel()
	f := newFleet(t, map[string]string{"w1": "web", "w2": "web", "w3": "web", "d1": "dns"})
	web := rollout.Selector{Roles: []string{"web"}}
	all := rollout.Selector{}

	// The cluster is down (no driver, no deploy refs): new machines converge
	// from main once, then wait for their deploy refs.
	c0 := f.log()[0]
	f.waitVerdicts(map[string]rollout.Verdict{"w1": {State: "waiting-for-ref"}, "w2": {State: "waiting-for-ref"},
		"w3": {State: "waiting-for-ref"}, "d1": {State: "waiting-for-ref"}})
	for _, h := range f.hosts() {
		if got := f.running(h); got != "v1" {
			t.Fatalf("%s runs %q; want main's v1 from its first boot", h, got)
		}
		f.booted(h)
	}

	t.Run("GroupRollout", func(t *testing.T) {
		c1 := f.commit(defaultPolicy, nil)
		r := f.run(c1, web)
		if r.Outcome != rollout.Completed || len(r.Advanced) != 3 {
			t.Fatalf("a rollout of the web group: %+v; want completed, 3 machines advanced", r)
		}
		for _, h := range []string{"w1", "w2", "w3"} {
			if f.ref("deploy", h) != c1 || f.running(h) != "v2" {
				t.Errorf("%s: deploy ref %.8s, running %q; want %.8s, v2", h, f.ref("deploy", h), f.running(h), c1)
			}
		}
		if f.ref("deploy", "d1") != "" || f.running("d1") != "v1" {
			t.Errorf("d1 is not in the group: deploy ref %q, running %q", f.ref("deploy", "d1"), f.running("d1"))
		}
		_ = c0
	})

	t.Run("DNSGate", func(t *testing.T) {
		c1 := f.ref("deploy", "w1")
		r := f.run(c1, all)
		if r.Outcome != rollout.Gated || r.Gate != rollout.GateDNS || !cmp.Equal(r.Pending, []string{"d1"}) {
			t.Fatalf("without approval: %+v; want gated at dns with d1 pending", r)
		}
		if f.ref("deploy", "d1") != "" {
			t.Errorf("a rejected gate must leave d1's ref alone, it is %.8s", f.ref("deploy", "d1"))
		}
		r = f.run(c1, all, rollout.GateDNS)
		if r.Outcome != rollout.Completed || f.ref("deploy", "d1") != c1 || f.running("d1") != "v2" {
			t.Fatalf("approved: %+v, d1's ref %.8s, running %q; want d1 converged on %.8s", r, f.ref("deploy", "d1"), f.running("d1"), c1)
		}
	})

	t.Run("FailureHaltsTheWave", func(t *testing.T) {
		c1 := f.ref("deploy", "w1")
		// One machine in flight at a time, so w3 has not started when w2 fails.
		c2 := f.commit(policy{Canary: 1, WaveSize: 2, Parallelism: 1, Soak: "1s"}, map[string]testflake.System{"w2": {Version: "v3-bad"}})
		r := f.run(c2, web)
		if r.Outcome != rollout.Halted || r.Failed == nil || r.Failed.Host != "w2" {
			t.Fatalf("%+v; want halted, naming w2", r)
		}
		if !cmp.Equal(r.Pending, []string{"w3"}) || f.ref("deploy", "w3") != c1 || f.running("w3") != "v2" {
			t.Errorf("w3 must be left as it was: pending %v, ref %.8s, running %q", r.Pending, f.ref("deploy", "w3"), f.running("w3"))
		}
		if f.running("w2") != "v2" || f.running("w1") != "v3" {
			t.Errorf("w2 must run its previous generation (v2), runs %q; the canary w1 v3, runs %q", f.running("w2"), f.running("w1"))
		}

		// Which machines lag, and why: desired against running.
		d, _ := f.driver()
		ss, err := d.States(context.Background(), f.plan(d, c2, web), []string{"w1", "w2", "w3"})
		if err != nil {
			t.Fatal(err)
		}
		want := []runningstate.State{
			{Host: "w1", Desired: c2, Running: c2, Verdict: "converged", Converged: true},
			{Host: "w2", Desired: c2, Running: c1, Verdict: "rolled-back", LastFailure: "health"},
			{Host: "w3", Desired: c1, Running: c1, Verdict: "converged", Converged: true},
		}
		if diff := cmp.Diff(want, ss); diff != "" {
			t.Errorf("machine states (-want, +got):\n%s", diff)
		}
	})

	t.Run("StaleMachineHalts", func(t *testing.T) {
		f.stop("w3")
		defer f.start("w3")
		c3 := f.commit(defaultPolicy, nil)
		r := f.run(c3, web)
		if r.Outcome != rollout.Halted || r.Failed == nil || r.Failed.Host != "w3" {
			t.Fatalf("%+v; want halted on the stale w3", r)
		}
		if f.ref("deploy", "w3") == c3 || f.ref("deploy", "w2") == c3 {
			t.Errorf("no machine of the wave with the stale one may move: w2 %.8s, w3 %.8s", f.ref("deploy", "w2"), f.ref("deploy", "w3"))
		}
	})

	t.Run("CanaryAlertHalts", func(t *testing.T) {
		f.appErrors.Store("w1", 1)
		defer f.appErrors.Delete("w1")
		c4 := f.commit(policy{Canary: 1, WaveSize: 2, Parallelism: 2, Soak: "5s"}, nil)
		r := f.run(c4, web)
		if r.Outcome != rollout.Halted || r.Failed == nil || r.Failed.Host != "w1" || f.ref("deploy", "w2") == c4 {
			t.Fatalf("%+v; want halted after the canary w1's soak, w2 not moved", r)
		}
	})

	t.Run("RebootGate", func(t *testing.T) {
		f.waitVerdicts(map[string]rollout.Verdict{"w3": {Commit: f.ref("deploy", "w3"), State: "converged"}})
		c5 := f.commit(defaultPolicy, map[string]testflake.System{"w1": {Version: "v6", Kernel: "k2"}, "w2": {Version: "v6", Kernel: "k2"}})
		r := f.run(c5, web)
		if r.Outcome != rollout.Gated || r.Gate != rollout.GateReboot || !cmp.Equal(r.RebootPending, []string{"w1", "w2"}) {
			t.Fatalf("%+v; want gated at reboot with w1 and w2 pending", r)
		}
		if len(f.reboots("w1")) != 0 || f.running("w1") == "v6" {
			t.Fatalf("w1 must not reboot before the approval: reboots %v, running %q", f.reboots("w1"), f.running("w1"))
		}
		r = f.run(c5, web, rollout.GateReboot)
		if r.Outcome != rollout.Completed || !cmp.Equal(r.Reboots, []string{"w1", "w2"}) {
			t.Fatalf("%+v; want w1 and w2 rebooted", r)
		}
		// One at a time: w1 rebooted while no other reboot ref existed.
		if diff := cmp.Diff([]string{"1"}, f.reboots("w1")); diff != "" {
			t.Errorf("reboot refs when w1 rebooted (-want, +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"2"}, f.reboots("w2")); diff != "" {
			t.Errorf("reboot refs when w2 rebooted (-want, +got):\n%s", diff)
		}
		f.waitVerdicts(converged(c5, "w1", "w2", "w3"))

		// What the workflow's exit handler reports.
		d, _ := f.driver()
		st, err := d.Status(context.Background(), f.plan(d, c5, all))
		if err != nil {
			t.Fatal(err)
		}
		var advanced []string
		for _, v := range st.Advanced {
			if v.Commit == c5 && v.State == "converged" {
				advanced = append(advanced, v.Host)
			}
		}
		if !cmp.Equal(advanced, []string{"w1", "w2", "w3"}) || !cmp.Equal(st.Pending, []string{"d1"}) || len(st.RebootPending) != 0 {
			t.Errorf("status: %+v; want w1, w2, w3 converged on the target and d1 pending", st)
		}
	})
}
