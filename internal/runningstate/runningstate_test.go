package runningstate

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	c1 = "1111111111111111111111111111111111111111"
	c2 = "2222222222222222222222222222222222222222"
)

func TestCondition(t *testing.T) {
	cases := map[string]struct {
		reason string
		s      State
		want   [2]string // status, reason
	}{
		"Converged": {"running what the ref asks for, converged and fresh",
			State{Host: "w1", Desired: c1, Running: c1, Verdict: "converged"}, [2]string{"True", ReasonConverged}},
		"ConvergedNoRef": {"a machine following a branch has no deploy ref to compare",
			State{Host: "w1", Running: c1, Verdict: "converged"}, [2]string{"True", ReasonConverged}},
		"ConvergedButStale": {"an old verdict is no proof: unknown",
			State{Host: "w1", Desired: c1, Running: c1, Verdict: "converged", Stale: true}, [2]string{"Unknown", ReasonStale}},
		"NoVerdict": {"Prometheus has nothing from the agent",
			State{Host: "w1"}, [2]string{"Unknown", ReasonNoVerdict}},
		"Applying": {"the agent works on the desired commit",
			State{Host: "w1", Desired: c2, Running: c1, Verdict: "applying"}, [2]string{"False", ReasonApplying}},
		"PendingReboot": {"applied, waiting for its reboot",
			State{Host: "w1", Desired: c2, Running: c2, Verdict: "pending-reboot"}, [2]string{"False", ReasonPendingReboot}},
		"RolledBack": {"the desired commit failed its gate; the previous one runs",
			State{Host: "w1", Desired: c2, Running: c1, Verdict: "rolled-back", LastFailure: "health"}, [2]string{"False", ReasonRolledBack}},
		"Failed": {"the desired commit failed before the switch",
			State{Host: "w1", Desired: c2, Running: c1, Verdict: "failed", LastFailure: "build"}, [2]string{"False", ReasonFailed}},
		"Refused": {"the desired commit does not descend from the applied one",
			State{Host: "w1", Desired: c2, Running: c1, Verdict: "refused"}, [2]string{"False", ReasonRefused}},
		"WaitingForRef": {"a new machine in rollout mode ran main once and waits",
			State{Host: "w1", Desired: c1, Running: c1, Verdict: "waiting-for-ref"}, [2]string{"False", ReasonWaitingForRef}},
		"ConvergedOnAnotherCommit": {"converged, yet not on what the ref asks for",
			State{Host: "w1", Desired: c2, Running: c1, Verdict: "converged"}, [2]string{"False", ReasonLagging}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := tc.s
			s.Judge()
			status, reason, msg := s.Condition()
			if diff := cmp.Diff(tc.want, [2]string{status, reason}); diff != "" {
				t.Errorf("%s: Converged (-want, +got):\n%s", tc.reason, diff)
			}
			if msg == "" {
				t.Errorf("%s: no message", tc.reason)
			}
			if (status == "True") != s.Converged {
				t.Errorf("%s: condition %s but Converged %v", tc.reason, status, s.Converged)
			}
		})
	}
}

func TestDataRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, s := range []State{
		{Host: "w1", Desired: c2, Running: c1, Verdict: "rolled-back", LastFailure: "health"},
		{Host: "w2", Desired: c2, Running: c2, Verdict: "pending-reboot"},
		{Host: "w3", Desired: c1, Running: c1, Verdict: "converged", Stale: true},
	} {
		s.Judge()
		got, when, err := Parse(s.Data(at))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s, got); diff != "" || !when.Equal(at) {
			t.Errorf("Parse(Data(s)) (-want, +got):\n%s, observed %s", diff, when)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	good := State{Host: "w1", Verdict: "converged"}.Data(time.Now())
	for name, tc := range map[string]struct {
		key, value string
	}{
		"NoHost":      {"host", ""},
		"BadBool":     {"stale", "maybe"},
		"BadObserved": {"observedAt", "yesterday"},
	} {
		t.Run(name, func(t *testing.T) {
			d := map[string]string{}
			for k, v := range good {
				d[k] = v
			}
			d[tc.key] = tc.value
			if _, _, err := Parse(d); err == nil {
				t.Errorf("Parse took %s=%q", tc.key, tc.value)
			}
		})
	}
}
