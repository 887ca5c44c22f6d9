//go:build rollout

package rollout

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-infra/homelab-infra/internal/rollout"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// TestArgo runs the rollout's WorkflowTemplate (workflows/rollout.yaml, as
// the README installs it) on real Argo Workflows v4.0.5: the controller,
// and argoexec beside every step in pods on a real node, each step the
// labctl step image `make push` builds. The machines are real agents on
// loopback, scraped by a real Prometheus; the steps reach Git and
// Prometheus over the pod network and push with a token the Git server
// limits to deploy/* and reboot/*. One stack, the steps in order: each
// starts from the state the last one left.
func TestArgo(t *testing.T) {
	// Beside TestRollout, whose fleet of its own on loopback shares
	// nothing with this stack, and whose minute or so of rollouts then
	// overlaps this test's waits for the steps' pods. TestNodeRunsAPod
	// stays sequential, so it runs before both: its node would take this
	// one's name, bridge and subnet (the harness names them by the
	// process).
	t.Parallel()
	s := newArgoStack(t, map[string]string{"w1": "web", "w2": "web", "w3": "web", "w4": "web", "d1": "dns"}, "n1")
	f := s.f
	web := []string{"w1", "w2", "w3", "w4"}

	// Before any rollout (no deploy refs): every machine converged from
	// main once, and waits for its ref.
	waiting := map[string]rollout.Verdict{}
	for _, h := range f.hosts() {
		waiting[h] = rollout.Verdict{State: "waiting-for-ref"}
	}
	f.waitVerdicts(waiting)
	for _, h := range f.hosts() {
		if got := f.running(h); got != "v1" {
			t.Fatalf("%s runs %q; want main's v1 from its first boot", h, got)
		}
		f.booted(h)
	}
	// The claims say so: each machine runs main's first commit and waits
	// for its ref, which does not exist, so nothing is desired yet
	// (kubectl get machines: CONVERGED False, VERDICT waiting-for-ref, no
	// DESIRED).
	c0 := f.log()[0]
	first := map[string]claimState{}
	for _, h := range f.hosts() {
		first[h] = claimState{Running: c0, Verdict: "waiting-for-ref", Converged: "False", Reason: "WaitingForRef"}
	}
	s.waitClaims(first)

	t.Run("GroupRollout", func(t *testing.T) {
		c1 := f.commit(policy{Canary: 1, WaveSize: 3, Parallelism: 2, Soak: "3s"}, nil)
		wf := s.finished(s.submit("web", "--role=web", ""))
		if phase(wf) != "Succeeded" {
			t.Fatalf("the rollout of the web group: %s (%s)\n%s", phase(wf), msg(wf), describe(wf))
		}
		for _, h := range web {
			if f.ref("deploy", h) != c1 || f.running(h) != "v2" {
				t.Errorf("%s: deploy ref %.8s, running %q; want %.8s, v2", h, f.ref("deploy", h), f.running(h), c1)
			}
		}
		if f.ref("deploy", "d1") != "" || f.running("d1") != "v1" {
			t.Errorf("d1 is not in the group: deploy ref %q, running %q", f.ref("deploy", "d1"), f.running("d1"))
		}
		// The canary alone and soaked, then a wave of three, two in flight.
		hosts := steps(wf, "host")
		canary, rest := hosts[0], hosts[1:]
		if canary.Inputs["host"] != "w1" || len(rest) != 3 {
			t.Fatalf("host steps %v; want the canary w1, then w2, w3, w4", names(hosts))
		}
		soak := steps(wf, "soak")
		if len(soak) != 1 || soak[0].StartedAt.Before(canary.FinishedAt) || rest[0].StartedAt.Before(soak[0].FinishedAt) {
			t.Errorf("the canary's soak must run after it and before the next wave: canary %v, soak %v, next %v", span(canary), spans(soak), span(rest[0]))
		}
		if n := maxOverlap(rest); n > 2 {
			t.Errorf("%d machines of the wave were in flight at once; the wave's parallelism is 2", n)
		}
		r := s.report(wf)
		if r.Outcome != "Succeeded" || len(r.Pending) != 0 || advanced(r, c1, "converged") != "w1,w2,w3,w4" {
			t.Errorf("the exit handler's report: %+v; want w1-w4 converged on %.8s, none pending", r, c1)
		}
		want := claimsConverged(c1, web...)
		want["d1"] = first["d1"]
		s.waitClaims(want)
	})

	t.Run("FailureHaltsTheWave", func(t *testing.T) {
		c1 := f.ref("deploy", "w1")
		// Waves: the canary w1, then w2 and w3 together, then w4. w2
		// fails its health gate.
		c2 := f.commit(policy{Canary: 1, WaveSize: 2, Parallelism: 2, Soak: "1s"}, map[string]testflake.System{"w2": {Version: "v3-bad"}})
		wf := s.finished(s.submit("web", "--role=web", ""))
		if phase(wf) != "Failed" {
			t.Fatalf("%s; want the rollout failed at w2\n%s", phase(wf), describe(wf))
		}
		if f.running("w2") != "v2" {
			t.Errorf("w2 must run its previous generation (v2), runs %q", f.running("w2"))
		}
		if f.ref("deploy", "w4") != c1 || f.running("w4") != "v2" {
			t.Errorf("w4, in the wave after the failure, must be left as it was: ref %.8s, running %q", f.ref("deploy", "w4"), f.running("w4"))
		}
		if f.running("w1") != "v3" {
			t.Errorf("the canary w1 runs %q, want v3", f.running("w1"))
		}
		for _, st := range steps(wf, "host") {
			if st.Inputs["host"] == "w4" {
				t.Errorf("w4's step ran (%s) after w2 failed", st.Phase)
			}
		}
		r := s.report(wf)
		if r.Failed == nil || r.Failed.Host != "w2" || !slices.Contains(r.Pending, "w4") {
			t.Errorf("the exit handler's report: %+v; want it to name w2, and w4 pending", r)
		}
		// Which machines lag, and why: w2 wants c2, runs c1, rolled back at
		// its health gate; w4 was never asked.
		want := claimsConverged(c2, "w1")
		want["w2"] = claimState{Desired: c2, Running: c1, Verdict: "rolled-back", LastFailure: "health", Converged: "False", Reason: "RolledBack"}
		for h, c := range claimsConverged(c1, "w4") {
			want[h] = c
		}
		s.waitClaims(want)
		// kubectl's table, the XRD's printer columns: w2 lags, and why.
		table := s.kubectl("get", "machines", "-A")
		t.Logf("kubectl get machines -A:\n%s", table)
		row := rowOf(table, "w2")
		for _, col := range []string{"CONVERGED", "VERDICT", "DESIRED", "RUNNING"} {
			if got, want := row[col], map[string]string{"CONVERGED": "False", "VERDICT": "rolled-back", "DESIRED": c2, "RUNNING": c1}[col]; got != want {
				t.Errorf("kubectl get machines: w2's %s is %q, want %q", col, got, want)
			}
		}
	})

	t.Run("StaleMachineHalts", func(t *testing.T) {
		last := s.claimState("w2")
		f.stop("w2")
		defer f.start("w2")
		// Its claim keeps what it last reported, and says it is stale.
		s.waitClaims(map[string]claimState{"w2": {Desired: last.Desired, Running: last.Running, Verdict: last.Verdict,
			LastFailure: last.LastFailure, Converged: "Unknown", Reason: "Stale"}})
		before := map[string]string{}
		for _, h := range web {
			before[h] = f.ref("deploy", h)
		}
		c3 := f.commit(policy{Canary: 1, WaveSize: 2, Parallelism: 2, Soak: "1s"}, nil)
		wf := s.finished(s.submit("web", "--role=web", ""))
		if phase(wf) != "Failed" {
			t.Fatalf("%s; want the rollout halted on the stale w2\n%s", phase(wf), describe(wf))
		}
		if f.ref("deploy", "w1") != c3 {
			t.Errorf("the canary w1 was in the wave before the stale machine: ref %.8s, want %.8s", f.ref("deploy", "w1"), c3)
		}
		for _, h := range []string{"w2", "w3", "w4"} {
			if f.ref("deploy", h) != before[h] {
				t.Errorf("%s moved from %.8s to %.8s: no machine of the stale one's wave, or after it, may move", h, before[h], f.ref("deploy", h))
			}
		}
		if r := s.report(wf); r.Failed == nil || r.Failed.Host != "w2" {
			t.Errorf("the exit handler's report: %+v; want it to name the stale w2", r)
		}
	})

	t.Run("OneRolloutPerGroupAcrossARestart", func(t *testing.T) {
		// One slot of the in-flight semaphore (a wave moving machines), and
		// no rollout running: none holds it. The halted rollouts before
		// this one must have given theirs back (with a slot per host step,
		// FailureHaltsTheWave's kept one: workflows/rollout.yaml, hosts).
		wfs := s.workflows()
		for i := range wfs {
			if wf := &wfs[i]; phase(wf) == "Running" || phase(wf) == "Pending" {
				t.Fatalf("workflow %s is %s before the test", wf.GetName(), phase(wf))
			}
		}
		restore := s.inFlight("1")
		defer s.inFlight(restore)
		// What w1 runs: its deploy ref's commit, or with none yet (this
		// subtest alone), main's first, from its first boot.
		c3 := f.ref("deploy", "w1")
		if c3 == "" {
			c3 = f.log()[len(f.log())-1]
		}
		// w1 (the canary) builds until the test releases it, after the
		// termination below (eight minutes at most): the first rollout
		// holds the group's mutex and the slot meanwhile, while the
		// controller restarts and two more rollouts start. (It slept four
		// minutes before, long enough for a loaded machine, and the test
		// then waited out the rest of them after the termination, some
		// two minutes.) An agent looks at Git (its verdict's age) once a
		// pass, so the policy gives the build ten minutes before the
		// verdict is stale or the machine over its budget.
		release := filepath.Join(f.dir, "release-w1-build")
		releaseBuild := func() {
			if err := os.WriteFile(release, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		defer releaseBuild()
		c4 := f.commit(policy{Canary: 1, WaveSize: 4, Parallelism: 2, Soak: "1s", StaleAfter: "10m", HostBudget: "10m"},
			map[string]testflake.System{"w1": {Version: "v5", BuildSleep: 480, BuildRelease: release}})
		a := s.submit("web", "--role=web", c4)
		var waiting time.Time
		s.wait(a, 10*time.Minute, func(wf *unstructured.Unstructured) bool {
			for _, n := range nodes(wf) {
				if n.TemplateName == "hosts" && strings.Contains(n.Message, "rollout-limits/in-flight") {
					if waiting.IsZero() {
						waiting = time.Now()
					}
					if time.Since(waiting) > 2*time.Minute {
						t.Fatalf("the only rollout waits for the in-flight slot: a finished rollout still holds it (%s)\n%s", n.Message, describe(wf))
					}
				}
			}
			hs := steps(wf, "host")
			return len(hs) > 0 && hs[0].Phase == "Running"
		})
		// While it builds, w1's claim says it is applying c4 and runs c3
		// (Converged False, Applying; after the publisher's 30 s, Stale:
		// its verdict is not new).
		s.waitClaim("w1", fmt.Sprintf("applying %.8s, running %.8s", c4, c3), func(c claimState) bool {
			return c.Desired == c4 && c.Running == c3 && c.Verdict == "applying"
		})
		if err := s.argo.Restart(context.Background()); err != nil {
			t.Fatal(err)
		}
		// A second rollout of the group, and a rollout of another group
		// (w4 alone) that needs a slot.
		b := s.submit("web", "--role=web", c4)
		c := s.submit("w4", "--host=w4", c4)
		// For 20 s the second rollout of the group waits for the lock, and
		// runs nothing.
		until := time.Now().Add(20 * time.Second)
		for time.Now().Before(until) {
			wfb := s.workflow(b)
			if p := phase(wfb); p != "Pending" && p != "" || len(nodes(wfb)) > 0 {
				t.Fatalf("a second rollout of the group started while the first runs: %s %q\n%s", p, msg(wfb), describe(wfb))
			}
			if p := phase(s.workflow(a)); p != "Running" {
				t.Fatalf("the first rollout is %s after the controller's restart; want Running", p)
			}
			time.Sleep(2 * time.Second)
		}
		if m := msg(s.workflow(b)); !strings.Contains(m, "rollout-web") {
			t.Errorf("the waiting rollout's message %q does not name the group's lock", m)
		}
		// The other group's rollout plans and checks, then waits for the
		// slot the first rollout's wave holds.
		s.wait(c, 5*time.Minute, func(wf *unstructured.Unstructured) bool {
			for _, n := range nodes(wf) {
				if n.TemplateName == "hosts" && n.Phase == "Pending" && strings.Contains(n.Message, "rollout-limits/in-flight") {
					return true
				}
			}
			if len(steps(wf, "host")) > 0 {
				if hs := steps(s.workflow(a), "host"); len(hs) == 0 || hs[0].Phase != "Running" {
					t.Fatalf("w1's build ended before rollout %s reached its wave (so it took the slot): a test slower than BuildSleep, the build's longest hold\n%s", c, describe(wf))
				}
				t.Fatalf("rollout %s moved a machine while another wave held the only slot\n%s", c, describe(wf))
			}
			return false
		})
		wfa := s.workflow(a)
		if p := phase(wfa); p != "Running" {
			t.Fatalf("the first rollout is %s before its termination; want Running (w1 builds)", p)
		}
		// The slot is its wave's hosts step's, not w1's host step's.
		if hs := slotHolders(wfa); len(hs) != 1 || hs[0].TemplateName != "hosts" {
			t.Errorf("the first rollout's in-flight slot holders: %v; want its wave's hosts step alone", hs)
		}
		// Terminated (argo terminate) while its wave holds the slot: the
		// mutex and the slot are released once its running step's pod ends,
		// so the second rollout runs, and the other group's takes the slot
		// when no wave of the second holds it. (Here the step runs to its
		// end: Argo signals a pod through the API server's exec, which
		// cannot reach this harness's node by its name.) w1's build ends
		// once the controller has taken the termination in (it copies
		// spec.shutdown into the status' stored spec as it processes the
		// workflow: workflow/controller/operator.go, setStoredWfSpec), and
		// with it the step.
		s.terminate(a)
		s.wait(a, 2*time.Minute, func(wf *unstructured.Unstructured) bool {
			got, _, _ := unstructured.NestedString(wf.Object, "status", "storedWorkflowTemplateSpec", "shutdown")
			return got == "Terminate"
		})
		if hs := steps(s.workflow(a), "host"); len(hs) == 0 || hs[0].Phase == "Succeeded" {
			t.Fatalf("w1's step ended before the controller took the termination in: a test slower than BuildSleep, the build's longest hold\n%s", describe(s.workflow(a)))
		}
		releaseBuild()
		wfa = s.finished(a)
		if phase(wfa) != "Failed" {
			t.Errorf("the terminated rollout is %s", phase(wfa))
		}
		wfb := s.finished(b)
		if phase(wfb) != "Succeeded" {
			t.Fatalf("the second rollout, once the first was terminated: %s (%s)\n%s", phase(wfb), msg(wfb), describe(wfb))
		}
		wfc := s.finished(c)
		if phase(wfc) != "Succeeded" {
			t.Fatalf("the other group's rollout: %s (%s)\n%s", phase(wfc), msg(wfc), describe(wfc))
		}
		for _, h := range web {
			if f.ref("deploy", h) != c4 {
				t.Errorf("%s: deploy ref %.8s, want %.8s", h, f.ref("deploy", h), c4)
			}
		}
		// With one slot, no machine of the other group's rollout was in
		// flight with one of the group's.
		others := append(steps(wfa, "host"), steps(wfb, "host")...)
		for _, x := range steps(wfc, "host") {
			for _, y := range others {
				if x.FinishedAt.IsZero() || y.FinishedAt.IsZero() {
					t.Errorf("host steps %s %s, %s %s: want both finished", x.Inputs["host"], span(x), y.Inputs["host"], span(y))
				} else if x.StartedAt.Before(y.FinishedAt) && y.StartedAt.Before(x.FinishedAt) {
					t.Errorf("%s (rollout %s, %s) and %s (%s) were in flight at once with one in-flight slot", x.Inputs["host"], c, span(x), y.Inputs["host"], span(y))
				}
			}
		}
		f.waitVerdicts(converged(c4, web...))
	})

	t.Run("DNSGate", func(t *testing.T) {
		c5 := f.commit(policy{Canary: 1, WaveSize: 4, Parallelism: 2, Soak: "1s"}, nil)
		r1 := s.submit("lab", "--role=web,dns", c5)
		s.gate(r1, rollout.GateDNS, "reject", "alice")
		wf := s.finished(r1)
		if phase(wf) != "Failed" || f.ref("deploy", "d1") != "" || f.running("d1") != "v1" {
			t.Fatalf("rejected: %s, d1's ref %q, running %q; want failed, d1 untouched\n%s", phase(wf), f.ref("deploy", "d1"), f.running("d1"), describe(wf))
		}
		for _, h := range web {
			if f.ref("deploy", h) != c5 {
				t.Errorf("%s, before the gate, was not advanced: %.8s", h, f.ref("deploy", h))
			}
		}
		if r := s.report(wf); !cmp.Equal(r.Pending, []string{"d1"}) {
			t.Errorf("the report after the rejection: %+v; want d1 pending", r)
		}

		r2 := s.submit("lab", "--role=web,dns", c5)
		s.gate(r2, rollout.GateDNS, "approve", "bob")
		if wf := s.finished(r2); phase(wf) != "Succeeded" || f.ref("deploy", "d1") != c5 {
			t.Fatalf("approved: %s, d1's ref %.8s; want d1 at %.8s\n%s", phase(wf), f.ref("deploy", "d1"), c5, describe(wf))
		}
		f.waitVerdicts(converged(c5, "d1"))
		s.waitClaims(claimsConverged(c5, "d1"))
	})

	t.Run("RebootGate", func(t *testing.T) {
		c6 := f.commit(policy{Canary: 1, WaveSize: 4, Parallelism: 2, Soak: "1s"},
			map[string]testflake.System{"w1": {Version: "v7", Kernel: "k2"}, "w2": {Version: "v7", Kernel: "k2"}})
		r := s.submit("web", "--role=web", c6)
		gate := s.atGate(r, rollout.GateReboot)
		// Before the approval: applied, waiting for their reboots.
		pending := claimState{Desired: c6, Running: c6, Verdict: "pending-reboot", PendingReboot: true, Converged: "False", Reason: "PendingReboot"}
		s.waitClaims(map[string]claimState{"w1": pending, "w2": pending})
		if len(f.reboots("w1"))+len(f.reboots("w2")) != 0 {
			t.Fatalf("a machine rebooted before the gate was approved: w1 %v, w2 %v", f.reboots("w1"), f.reboots("w2"))
		}
		s.decide(r, gate, "approve", "carol")
		wf := s.finished(r)
		if phase(wf) != "Succeeded" {
			t.Fatalf("%s (%s)\n%s", phase(wf), msg(wf), describe(wf))
		}
		reboots := steps(wf, "reboot")
		if len(reboots) != 2 || reboots[0].Inputs["host"] != "w1" || reboots[1].Inputs["host"] != "w2" || maxOverlap(reboots) > 1 {
			t.Errorf("reboot steps %v %v; want w1, then w2, one at a time", names(reboots), spans(reboots))
		}
		// Each rebooted once, after the approval.
		for _, h := range []string{"w1", "w2"} {
			if n := len(f.reboots(h)); n != 1 {
				t.Errorf("%s rebooted %d times, want once", h, n)
			}
		}
		f.waitVerdicts(converged(c6, web...))
		s.waitClaims(claimsConverged(c6, web...))
	})

	t.Run("ClusterDown", func(t *testing.T) {
		// What the machines run, report and follow before the cluster
		// stops, whatever the subtests before this one (if any) left: the
		// cluster's absence must change none of it.
		running := map[string]string{}
		for _, h := range f.hosts() {
			running[h] = f.running(h)
		}
		reported := f.verdicts()
		if len(reported) != len(f.hosts()) {
			t.Fatalf("verdicts before the cluster stops: %+v; want one for each of %v", reported, f.hosts())
		}
		refs := f.refs()
		s.cp.Down()
		// A new machine, with no deploy ref, converges from main (the
		// commit that adds it); the others keep what they run.
		f.roles["n1"] = "web"
		f.commit(defaultPolicy, nil)
		mainVersion := fmt.Sprintf("v%d", len(f.log())) // what f.commit gave every host
		f.start("n1")
		// It follows no ref yet, so its verdict names no commit: a machine
		// with no deploy ref desires nothing yet.
		f.waitVerdicts(map[string]rollout.Verdict{"n1": {State: "waiting-for-ref"}})
		if got := f.running("n1"); got != mainVersion {
			t.Errorf("the new machine runs %q, want main's %s", got, mainVersion)
		}
		for h, v := range running {
			if got := f.running(h); got != v {
				t.Errorf("%s runs %q with the cluster down, was %q", h, got, v)
			}
		}
		// ... and keep reporting it: the verdicts on their refs (or, for a
		// machine with no ref yet, waiting-for-ref), none taking main's new
		// commit.
		f.waitVerdicts(reported)
		if diff := cmp.Diff(refs, f.refs()); diff != "" {
			t.Errorf("refs moved with the cluster down (-before, +after):\n%s", diff)
		}
	})
}

// rowOf reads one row of a kubectl table by its NAME, column by header:
// kubectl pads every column to the start of its header.
func rowOf(table, name string) map[string]string {
	lines := strings.Split(strings.TrimSpace(table), "\n")
	header := lines[0]
	var starts []int
	for i := range header {
		if header[i] != ' ' && (i == 0 || header[i-1] == ' ') {
			starts = append(starts, i)
		}
	}
	cell := func(l string, j int) string {
		from, to := starts[j], len(l)
		if j+1 < len(starts) {
			to = min(to, starts[j+1])
		}
		if from >= to {
			return ""
		}
		return strings.TrimSpace(l[from:to])
	}
	for _, l := range lines[1:] {
		row := map[string]string{}
		for j := range starts {
			row[cell(header, j)] = cell(l, j)
		}
		if row["NAME"] == name {
			return row
		}
	}
	return nil
}

// steps lists a workflow's nodes of a template that ran a pod, by start.
func steps(wf *unstructured.Unstructured, template string) []node {
	var out []node
	for _, n := range nodes(wf) {
		if n.TemplateName == template && n.Type == "Pod" {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b node) int { return a.StartedAt.Compare(b.StartedAt) })
	return out
}

func names(ns []node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Inputs["host"])
	}
	return out
}

func span(n node) string {
	return n.StartedAt.Format("15:04:05") + "-" + n.FinishedAt.Format("15:04:05")
}

func spans(ns []node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, span(n))
	}
	return out
}

// maxOverlap is the most steps that ran at one time.
func maxOverlap(ns []node) int {
	most := 0
	for _, a := range ns {
		n := 0
		for _, b := range ns {
			if !b.StartedAt.After(a.StartedAt) && b.FinishedAt.After(a.StartedAt) {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// advanced lists the report's machines with the state on the commit.
func advanced(r rollout.Report, commit, state string) string {
	var out []string
	for _, v := range r.Advanced {
		if v.Commit == commit && v.State == state {
			out = append(out, v.Host)
		}
	}
	return strings.Join(out, ",")
}

// slotHolders are a workflow's nodes that hold a semaphore slot
// (status.synchronization.semaphore.holding: namespace/workflow/node).
func slotHolders(wf *unstructured.Unstructured) []node {
	holding, _, _ := unstructured.NestedSlice(wf.Object, "status", "synchronization", "semaphore", "holding")
	byID := map[string]node{}
	for _, n := range nodes(wf) {
		byID[n.ID] = n
	}
	var out []node
	for _, h := range holding {
		holders, _, _ := unstructured.NestedStringSlice(h.(map[string]any), "holders")
		for _, k := range holders {
			id := k[strings.LastIndex(k, "/")+1:]
			n, ok := byID[id]
			if !ok {
				n = node{ID: id, Name: k}
			}
			out = append(out, n)
		}
	}
	return out
}

// inFlight sets the fleet-wide slots of waves moving machines (ConfigMap
// rollout-limits, the hosts steps' semaphore), and returns what it was.
func (s *argoStack) inFlight(n string) string {
	s.t.Helper()
	cm := &corev1.ConfigMap{}
	if err := s.cp.Client.Get(context.Background(), client.ObjectKey{Namespace: rolloutsNS, Name: "rollout-limits"}, cm); err != nil {
		s.t.Fatal(err)
	}
	was := cm.Data["in-flight"]
	cm.Data["in-flight"] = n
	if err := s.cp.Client.Update(context.Background(), cm); err != nil {
		s.t.Fatal(err)
	}
	return was
}

// workflows lists the rollouts' workflows.
func (s *argoStack) workflows() []unstructured.Unstructured {
	s.t.Helper()
	l := &unstructured.UnstructuredList{}
	l.SetAPIVersion("argoproj.io/v1alpha1")
	l.SetKind("WorkflowList")
	if err := s.cp.Client.List(context.Background(), l, client.InNamespace(rolloutsNS)); err != nil {
		s.t.Fatal(err)
	}
	return l.Items
}
