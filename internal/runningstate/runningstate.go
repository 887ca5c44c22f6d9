// Package runningstate is a machine's running state: the commit its deploy
// ref asks for against the one it runs, its agent's verdict, a pending
// reboot and its last failure, and whether it has converged. It is read
// from Prometheus only (internal/rollout); labctl rollout status prints it,
// and labctl rollout publish-state writes it into a ConfigMap per machine,
// which the composition function reads (a required resource: the function
// does no network I/O) onto the machine's claim: status.system, printer
// columns and the Converged condition. One rule, here, says what converged
// means for all of them.
package runningstate

import (
	"fmt"
	"strconv"
	"time"
)

// State is one machine's desired and running state.
type State struct {
	Host string `json:"host"`
	// Desired is the commit its ref asks for: deploy/<host> in rollout
	// mode, else the branch it follows ("" when unknown).
	Desired string `json:"desired,omitempty"`
	// Running is the commit it applied (nix_gitops_applied_info).
	Running string `json:"running,omitempty"`
	// Verdict is its agent's verdict on the commit it follows ("" when
	// Prometheus has none: the agent is not running, or not scraped).
	Verdict       string `json:"verdict,omitempty"`
	PendingReboot bool   `json:"pendingReboot,omitempty"`
	// LastFailure is the stage of its last failed run ("" after a success).
	LastFailure string `json:"lastFailure,omitempty"`
	// Stale: the agent has not looked at Git within staleAfter, or has
	// vanished from Prometheus since it was last seen.
	Stale bool `json:"stale,omitempty"`
	// Converged: running what its ref asks for, healthy and fresh (Judge).
	Converged bool `json:"converged"`
}

// Judge sets Converged: the verdict on the followed commit is converged,
// fresh, and the machine runs that commit.
func (s *State) Judge() {
	s.PendingReboot = s.PendingReboot || s.Verdict == "pending-reboot"
	s.Converged = s.Verdict == "converged" && !s.Stale && s.Running != "" && (s.Desired == "" || s.Desired == s.Running)
}

// Reasons of the Converged condition, one a verdict, and the rest.
const (
	ReasonConverged     = "Converged"
	ReasonApplying      = "Applying"
	ReasonPendingReboot = "PendingReboot"
	ReasonRolledBack    = "RolledBack"
	ReasonFailed        = "Failed"
	ReasonRefused       = "Refused"
	ReasonWaitingForRef = "WaitingForRef"
	ReasonStale         = "Stale"
	ReasonNoVerdict     = "NoVerdict"
	ReasonLagging       = "Lagging"
)

// Condition is the Converged condition a claim shows for s: its status
// ("True", "False", "Unknown"), reason and a message that says why it lags.
func (s State) Condition() (status, reason, message string) {
	want, run := short(s.Desired), short(s.Running)
	if run == "" {
		run = "nothing applied yet"
	}
	failure := ""
	if s.LastFailure != "" {
		failure = " at its " + s.LastFailure + " stage"
	}
	switch {
	case s.Converged:
		return "True", ReasonConverged, "running " + run + ", what its ref asks for"
	case s.Stale:
		return "Unknown", ReasonStale, fmt.Sprintf("its agent stopped reporting (last: %s on %s, running %s): is nix-gitops running, and scraped?", orNone(s.Verdict), orNone(want), run)
	case s.Verdict == "":
		return "Unknown", ReasonNoVerdict, "Prometheus has no verdict from its agent: it is not running, or not scraped"
	case s.Verdict == "applying":
		return "False", ReasonApplying, fmt.Sprintf("applying %s; running %s", want, run)
	case s.Verdict == "pending-reboot":
		return "False", ReasonPendingReboot, fmt.Sprintf("%s is applied and waits for a reboot (reboot/%s approves it); running %s", want, s.Host, run)
	case s.Verdict == "rolled-back":
		return "False", ReasonRolledBack, fmt.Sprintf("%s failed%s and was rolled back; running %s", want, failure, run)
	case s.Verdict == "failed":
		return "False", ReasonFailed, fmt.Sprintf("%s failed%s; running %s", want, failure, run)
	case s.Verdict == "refused":
		return "False", ReasonRefused, fmt.Sprintf("%s was refused (it does not descend from the applied commit, or its signature is not allowed); running %s", want, run)
	case s.Verdict == "waiting-for-ref":
		return "False", ReasonWaitingForRef, fmt.Sprintf("no deploy/%s ref to follow yet (a rollout makes it); running %s", s.Host, run)
	}
	return "False", ReasonLagging, fmt.Sprintf("%s on %s; running %s", s.Verdict, orNone(want), run)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// The ConfigMaps labctl rollout publish-state writes, one a machine, in the
// claims' namespace.
const (
	// Label marks them (value "true").
	Label  = "homelab.dev/running-state"
	prefix = "running-state-"
)

// Name is the ConfigMap of host's state.
func Name(host string) string { return prefix + host }

// Data is s as a ConfigMap's data, with when the publisher read it.
func (s State) Data(observed time.Time) map[string]string {
	return map[string]string{
		"host": s.Host, "desired": s.Desired, "running": s.Running, "verdict": s.Verdict,
		"pendingReboot": strconv.FormatBool(s.PendingReboot), "lastFailure": s.LastFailure,
		"stale": strconv.FormatBool(s.Stale), "converged": strconv.FormatBool(s.Converged),
		"observedAt": observed.UTC().Format(time.RFC3339),
	}
}

// Parse reads a ConfigMap's data back. Converged is judged again, not read:
// the rule lives in Judge alone.
func Parse(data map[string]string) (State, time.Time, error) {
	s := State{Host: data["host"], Desired: data["desired"], Running: data["running"], Verdict: data["verdict"], LastFailure: data["lastFailure"]}
	if s.Host == "" {
		return State{}, time.Time{}, fmt.Errorf("data.host is missing")
	}
	var err error
	for k, v := range map[string]*bool{"pendingReboot": &s.PendingReboot, "stale": &s.Stale} {
		if *v, err = strconv.ParseBool(data[k]); err != nil {
			return State{}, time.Time{}, fmt.Errorf("data.%s: %q is not true or false", k, data[k])
		}
	}
	observed, err := time.Parse(time.RFC3339, data["observedAt"])
	if err != nil {
		return State{}, time.Time{}, fmt.Errorf("data.observedAt: %q is not an RFC 3339 time", data["observedAt"])
	}
	s.Judge()
	return s, observed, nil
}
