package function

import (
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/response"

	"github.com/homelab-infra/homelab-infra/internal/flakeref"
	"github.com/homelab-infra/homelab-infra/internal/machine"
	"github.com/homelab-infra/homelab-infra/internal/runningstate"
)

// RunningStateRequirement is the name under which the function asks
// Crossplane for the machine's running state: the ConfigMap labctl rollout
// publish-state keeps in the claim's namespace (internal/runningstate).
const RunningStateRequirement = "running-state"

// ConditionConverged is the condition the function sets on the XR and its
// claim from the running state: True when the machine runs what its ref
// asks for, healthy; False or Unknown, with why, otherwise.
const ConditionConverged = "Converged"

// ReasonNotPublished is Converged's reason while no running state exists.
const ReasonNotPublished = "NotPublished"

// publishedWithin is how old a published state may be before the claim
// says it is not current: the publisher runs every minute.
const publishedWithin = 10 * time.Minute

// runningState asks Crossplane for host's running state and returns
// it (nil when there is none yet, or the XR has no claim, whose namespace
// holds it). Unlike the other requirements it never holds composing back: a
// missing or unreadable state only leaves the Converged condition Unknown,
// and Crossplane calls again with the answer before it applies anything.
func runningState(req *fnv1.RunFunctionRequest, rsp *fnv1.RunFunctionResponse, host string, xr map[string]any) *structpb.Struct {
	ns := claimNamespace(xr)
	if ns == "" {
		return nil
	}
	require(rsp, RunningStateRequirement, &fnv1.ResourceSelector{
		ApiVersion: "v1",
		Kind:       "ConfigMap",
		Match:      &fnv1.ResourceSelector_MatchName{MatchName: runningstate.Name(host)},
		Namespace:  &ns,
	})
	items := req.GetRequiredResources()[RunningStateRequirement].GetItems()
	if len(items) == 0 {
		return nil
	}
	return items[0].GetResource()
}

func toMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

// hostOf is the machine's host in its flake ref (the agent's host label).
func hostOf(s *machine.Spec) string {
	if r, err := flakeref.Parse(s.Nix.FlakeRef); err == nil && r.Host != "" {
		return r.Host
	}
	return s.Hostname
}

func claimNamespace(xr map[string]any) string {
	spec, _ := xr["spec"].(map[string]any)
	ref, _ := spec["claimRef"].(map[string]any)
	ns, _ := ref["namespace"].(string)
	return ns
}

// setRunning puts the running state on the XR's status (status.system,
// which Crossplane copies to the claim) and sets the Converged condition.
func setRunning(b *structBuilder, rsp *fnv1.RunFunctionResponse, cm *structpb.Struct, host string, now time.Time) error {
	cond := func(status, reason, msg string) {
		var c *response.ConditionOption
		switch status {
		case "True":
			c = response.ConditionTrue(rsp, ConditionConverged, reason)
		case "False":
			c = response.ConditionFalse(rsp, ConditionConverged, reason)
		default:
			c = response.ConditionUnknown(rsp, ConditionConverged, reason)
		}
		c.WithMessage(msg).TargetCompositeAndClaim()
	}
	if cm == nil {
		cond("Unknown", ReasonNotPublished, fmt.Sprintf("no running state for %s yet: labctl rollout publish-state writes ConfigMap %s from Prometheus (workflows/running-state.yaml)", host, runningstate.Name(host)))
		return nil
	}
	data := map[string]string{}
	for k, v := range cm.GetFields()["data"].GetStructValue().GetFields() {
		data[k] = v.GetStringValue()
	}
	st, observed, err := runningstate.Parse(data)
	if err != nil {
		cond("Unknown", ReasonNotPublished, fmt.Sprintf("ConfigMap %s is unreadable (%v): labctl rollout publish-state rewrites it", runningstate.Name(host), err))
		return nil
	}
	sys, err := toMap(machine.SystemStatus{DesiredCommit: st.Desired, RunningCommit: st.Running, Verdict: st.Verdict,
		PendingReboot: st.PendingReboot, LastFailure: st.LastFailure})
	if err != nil {
		return err
	}
	if err := b.setStatus(rsp, map[string]any{"system": sys}); err != nil {
		return err
	}
	if age := now.Sub(observed); age > publishedWithin {
		cond("Unknown", ReasonNotPublished, fmt.Sprintf("the running state was last published %s ago: is labctl rollout publish-state running?", age.Round(time.Second)))
		return nil
	}
	cond(st.Condition())
	return nil
}
