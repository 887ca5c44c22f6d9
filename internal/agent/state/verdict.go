// verdict.go: the machine's verdict on the commit it follows, the one
// signal the rollout driver reads (through Prometheus, design D13).

package state

// Verdicts. A closed set: they are metric label values, so they never carry
// error text (that stays in state.json and the journal).
const (
	VerdictConverged     = "converged"       // the followed commit runs and passed its health gate
	VerdictPendingReboot = "pending-reboot"  // applied for the next boot; runs (and is gated) after a reboot
	VerdictApplying      = "applying"        // seen, not yet applied (or being applied now)
	VerdictRolledBack    = "rolled-back"     // failed after its switch (or its boot); the previous generation runs
	VerdictRefused       = "refused"         // not a fast-forward, below the floor, or badly signed
	VerdictFailed        = "failed"          // did not evaluate, build or fetch; the system is untouched
	VerdictWaitingForRef = "waiting-for-ref" // rollout mode: the deploy ref does not exist (yet)
)

// Rollout is what a machine in rollout mode last saw of its refs.
type Rollout struct {
	// Ref is the ref the last poll followed: the deploy ref, or the flake
	// ref's branch at a first boot before the deploy ref exists.
	Ref string `json:"ref"`
	// Missing: the deploy ref does not exist and the machine has applied a
	// commit already, so it waits for the ref (no fallback to the branch).
	Missing bool `json:"missing,omitempty"`
	// Reboot is the commit the reboot ref points to ("" when it does not
	// exist): it approves a reboot into that commit or its ancestors.
	Reboot string `json:"reboot,omitempty"`
	// RebootScheduled is the commit a reboot was scheduled for, so an
	// approval reboots once.
	RebootScheduled string `json:"rebootScheduled,omitempty"`
}

// Verdict is the machine's verdict on the commit it follows.
type Verdict struct {
	Host   string `json:"host"`
	Commit string `json:"commit"`
	State  string `json:"state"`
}

// Verdict computes the verdict from the state; nil before the first poll.
func (s *State) Verdict() *Verdict {
	v := &Verdict{Host: s.Host, Commit: s.RemoteHead}
	switch {
	case s.Rollout != nil && s.Rollout.Missing:
		v.Commit, v.State = "", VerdictWaitingForRef
	case s.InProgress != nil && s.Last != nil && s.Last.Outcome == "rollback-failed":
		v.Commit, v.State = s.InProgress.Commit, VerdictFailed
	case s.InProgress != nil:
		v.Commit, v.State = s.InProgress.Commit, VerdictApplying
	case v.Commit == "":
		return nil
	default:
		v.State = s.verdictOf(v.Commit)
	}
	return v
}

func (s *State) verdictOf(commit string) string {
	if bad, ok := s.IsBad(commit); ok {
		switch bad.Stage {
		case StageRefuse:
			return VerdictRefused
		case StageProfile, StageSwitch, StageHealth, StageRollback, StageBootHealth:
			return VerdictRolledBack
		}
		return VerdictFailed
	}
	if s.Applied != nil && s.Applied.Commit == commit {
		if s.PendingBoot != nil && s.PendingBoot.Generation.Commit == commit {
			return VerdictPendingReboot
		}
		return VerdictConverged
	}
	if s.Last != nil && s.Last.Commit == commit {
		switch s.Last.Outcome {
		case "refused":
			return VerdictRefused
		case "failed", "rollback-failed":
			return VerdictFailed
		}
	}
	return VerdictApplying
}
