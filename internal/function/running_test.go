package function

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/runningstate"
)

// stateMap is the ConfigMap labctl rollout publish-state writes for s.
func stateMap(t *testing.T, s runningstate.State, observed time.Time) *structpb.Struct {
	t.Helper()
	data := map[string]any{}
	for k, v := range s.Data(observed) {
		data[k] = v
	}
	st, err := structpb.NewStruct(map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": runningstate.Name(s.Host), "namespace": "infra-machines"},
		"data":     data,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// converged is the Converged condition of a response.
func converged(rsp *fnv1.RunFunctionResponse) (status, reason string) {
	for _, c := range rsp.GetConditions() {
		if c.GetType() == ConditionConverged {
			if c.GetTarget() != fnv1.Target_TARGET_COMPOSITE_AND_CLAIM {
				return "not on the claim", ""
			}
			return map[fnv1.Status]string{fnv1.Status_STATUS_CONDITION_TRUE: "True", fnv1.Status_STATUS_CONDITION_FALSE: "False",
				fnv1.Status_STATUS_CONDITION_UNKNOWN: "Unknown"}[c.GetStatus()], c.GetReason()
		}
	}
	return "", ""
}

// TestRunningState: the function asks Crossplane for the machine's running
// state (the ConfigMap in the claim's namespace named by its flake host),
// puts it on the XR's status.system and sets Converged; without one, or an
// old or unreadable one, it still composes, and Converged is Unknown.
func TestRunningState(t *testing.T) {
	const c1, c2 = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	now := time.Now()
	claims, input := exampleClaims(t)
	xr := repo.XRFor(claims["dns01"])
	bad := stateMap(t, runningstate.State{Host: "dns01"}, now)
	bad.Fields["data"].GetStructValue().Fields["stale"] = structpb.NewStringValue("perhaps")

	cases := map[string]struct {
		reason     string
		items      []*structpb.Struct
		wantStatus map[string]any
		want       [2]string
	}{
		"NotPublished": {
			reason: "no ConfigMap (publish-state not running, or the machine never reported): Unknown, and composed all the same",
			want:   [2]string{"Unknown", ReasonNotPublished},
		},
		"Converged": {
			reason:     "running what its ref asks for",
			items:      []*structpb.Struct{stateMap(t, runningstate.State{Host: "dns01", Desired: c2, Running: c2, Verdict: "converged"}, now)},
			wantStatus: map[string]any{"desiredCommit": c2, "runningCommit": c2, "verdict": "converged"},
			want:       [2]string{"True", runningstate.ReasonConverged},
		},
		"RolledBack": {
			reason:     "the desired commit failed its health gate: the previous runs",
			items:      []*structpb.Struct{stateMap(t, runningstate.State{Host: "dns01", Desired: c2, Running: c1, Verdict: "rolled-back", LastFailure: "health"}, now)},
			wantStatus: map[string]any{"desiredCommit": c2, "runningCommit": c1, "verdict": "rolled-back", "lastFailure": "health"},
			want:       [2]string{"False", runningstate.ReasonRolledBack},
		},
		"PendingReboot": {
			reason:     "applied, waiting for its reboot",
			items:      []*structpb.Struct{stateMap(t, runningstate.State{Host: "dns01", Desired: c2, Running: c2, Verdict: "pending-reboot"}, now)},
			wantStatus: map[string]any{"desiredCommit": c2, "runningCommit": c2, "verdict": "pending-reboot", "pendingReboot": true},
			want:       [2]string{"False", runningstate.ReasonPendingReboot},
		},
		"OldPublication": {
			reason:     "a state published long ago says nothing of now",
			items:      []*structpb.Struct{stateMap(t, runningstate.State{Host: "dns01", Desired: c2, Running: c2, Verdict: "converged"}, now.Add(-time.Hour))},
			wantStatus: map[string]any{"desiredCommit": c2, "runningCommit": c2, "verdict": "converged"},
			want:       [2]string{"Unknown", ReasonNotPublished},
		},
		"Unreadable": {
			reason: "a ConfigMap the function cannot read never stops it composing",
			items:  []*structpb.Struct{bad},
			want:   [2]string{"Unknown", ReasonNotPublished},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := runWithRequired(t, xr, input, RunningStateRequirement, tc.items != nil, tc.items)
			if f := fatals(rsp); f != "" {
				t.Fatalf("%s: Fatal: %s", tc.reason, f)
			}
			if rsp.GetDesired().GetResources()["user-data"] == nil {
				t.Errorf("%s: the snippet was not composed", tc.reason)
			}
			sel := rsp.GetRequirements().GetResources()[RunningStateRequirement]
			if sel.GetKind() != "ConfigMap" || sel.GetMatchName() != "running-state-dns01" || sel.GetNamespace() != "infra-machines" {
				t.Errorf("%s: required %s %s/%s, want ConfigMap infra-machines/running-state-dns01", tc.reason, sel.GetKind(), sel.GetNamespace(), sel.GetMatchName())
			}
			got, _ := rsp.GetDesired().GetComposite().GetResource().AsMap()["status"].(map[string]any)["system"].(map[string]any)
			if diff := cmp.Diff(tc.wantStatus, got); diff != "" {
				t.Errorf("%s: status.system (-want, +got):\n%s", tc.reason, diff)
			}
			status, reason := converged(rsp)
			if diff := cmp.Diff(tc.want, [2]string{status, reason}); diff != "" {
				t.Errorf("%s: Converged (-want, +got):\n%s", tc.reason, diff)
			}
		})
	}

	// An XMachine made without a claim has no namespace to read from.
	noClaim := repo.XRFor(claims["dns01"])
	delete(noClaim["spec"].(map[string]any), "claimRef")
	rsp := runWithRequired(t, noClaim, input, "", false, nil)
	if _, ok := rsp.GetRequirements().GetResources()[RunningStateRequirement]; ok {
		t.Errorf("an XMachine without a claim asked for a running state")
	}
}
