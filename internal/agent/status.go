// status.go: what `nix-gitops status` shows.

package agent

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/activation"
	"github.com/homelab-infra/homelab-infra/internal/agent/config"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// Status is what `nix-gitops status --json` prints: the state plus what
// the agent follows and what the profile points to now.
type Status struct {
	Target  string            `json:"target"`
	Profile *state.Generation `json:"profile,omitempty"`
	// Verdict is the verdict on the followed commit, as the metric
	// nix_gitops_target_info reports it.
	Verdict *state.Verdict `json:"verdict,omitempty"`
	*state.State
}

// ReadStatus reads the state without taking the lock: state.json is
// replaced atomically, so a reader always sees a whole file. It needs no
// flake target: status works before cloud-init wrote one.
func ReadStatus(cfg config.Config) (Status, error) {
	st, err := state.Load(cfg.StateDir)
	if err != nil {
		return Status{}, err
	}
	s := Status{State: st, Verdict: st.Verdict()}
	if t, err := cfg.Target(); err == nil {
		s.Target = t.String()
	} else {
		s.Target = "unknown: " + err.Error()
	}
	if g, ok, err := activation.Current(cfg.Profile); err == nil && ok {
		s.Profile = &state.Generation{Number: g.Number, StorePath: g.StorePath}
	}
	return s, nil
}

// WriteStatus prints s for people.
func WriteStatus(w io.Writer, s Status) {
	p := func(k, v string) { fmt.Fprintf(w, "%-16s %s\n", k+":", v) }
	p("target", s.Target)
	if s.Applied != nil {
		p("applied", fmt.Sprintf("%s (generation %d, %s, %s)", s.Applied.Commit, s.Applied.Number, s.Applied.SwitchMode, s.Applied.Time.Format(time.RFC3339)))
	} else {
		p("applied", "nothing yet")
	}
	if s.Profile != nil {
		p("profile", fmt.Sprintf("generation %d → %s", s.Profile.Number, s.Profile.StorePath))
	}
	if s.RemoteHead != "" {
		p("remote head", s.RemoteHead)
	}
	if s.Rollout != nil {
		p("following", s.Rollout.Ref)
		if s.Rollout.Reboot != "" {
			p("reboot approved", "into "+s.Rollout.Reboot+" and its ancestors")
		}
	}
	if s.Verdict != nil {
		p("verdict", s.Verdict.State+" "+s.Verdict.Commit)
	}
	if s.Last != nil {
		last := s.Last.Outcome
		if s.Last.Stage != "" {
			last += " at " + s.Last.Stage
		}
		p("last run", last+" ("+s.Last.Time.Format(time.RFC3339)+")")
		if s.Last.Error != "" {
			p("last error", s.Last.Error)
		}
	}
	if s.InProgress != nil {
		p("in progress", fmt.Sprintf("%s of %s (pid %d, since %s)", s.InProgress.Stage, s.InProgress.Commit, s.InProgress.PID, s.InProgress.Started.Format(time.RFC3339)))
	}
	p("reboot required", fmt.Sprint(s.RebootRequired))
	writeSecrets(p, s.Secrets)
	for _, b := range s.BadCommits {
		p("bad commit", fmt.Sprintf("%s (%s: %s)", b.Commit, b.Stage, oneLine(b.Error)))
	}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
