//go:build vm

package vm

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// snap is one of the probe's snapshots (step snap:NAME): the agent's state
// and what the system says about itself at that moment.
type snap struct {
	name  string
	r     report
	st    state.State
	links map[string]string // /run/current-system and friends → resolved
	units map[string]string // "unit Key" → value
}

func (r report) snap(t *testing.T, name string) *snap {
	t.Helper()
	s := &snap{name: name, r: r, links: map[string]string{}, units: map[string]string{}}
	if err := json.Unmarshal([]byte(r[name+"/state"]), &s.st); err != nil {
		t.Fatalf("%s: cannot read state.json: %v: %q", name, err, r[name+"/state"])
	}
	for _, l := range r.lines(name + "/links") {
		if k, v, ok := strings.Cut(l, " "); ok {
			s.links[k] = v
		}
	}
	for _, l := range r.lines(name + "/units") {
		unit, rest, _ := strings.Cut(l, " ")
		for _, kv := range strings.Fields(rest) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				s.units[unit+" "+k] = v
			}
		}
	}
	return s
}

func (s *snap) current() string { return s.links["/run/current-system"] }
func (s *snap) booted() string  { return s.links["/run/booted-system"] }
func (s *snap) profile() string { return s.links["/nix/var/nix/profiles/system"] }
func (s *snap) bootDefault() string {
	return s.links["/boot/homelab-standin/default"]
}

// last checks the last run's outcome, commit and (when given) stage, and
// that nothing is left in progress.
func (s *snap) last(t *testing.T, outcome, commit, stage string) {
	t.Helper()
	l := s.st.Last
	if l == nil || l.Outcome != outcome || l.Commit != commit || (stage != "" && l.Stage != stage) {
		t.Errorf("%s: last run %+v, want %s of %s (stage %q)", s.name, l, outcome, commit, stage)
	}
	if s.st.InProgress != nil {
		t.Errorf("%s: a run is left in progress: %+v", s.name, s.st.InProgress)
	}
	if v, err := metric(s.r[s.name+"/metrics"], "nix_gitops_last_outcome", map[string]string{"outcome": outcome}); err != nil || v != 1 {
		t.Errorf("%s: metrics: want nix_gitops_last_outcome{outcome=%q} 1, got %v (%v)", s.name, outcome, v, err)
	}
}

// ran checks that a run of commit ended with outcome (and stage, when given)
// in this boot, by the agent's own "run finished" log line: a daemon's later
// no-op ticks replace state.json's last run. Nothing may be in progress.
func (s *snap) ran(t *testing.T, outcome, commit, stage string) {
	t.Helper()
	want := "outcome=" + outcome + " commit=" + commit[:12] + " "
	for _, l := range s.r.lines(s.name + "/runs") {
		if strings.Contains(l, want) && (stage == "" || strings.Contains(l, "stage="+stage)) {
			if s.st.InProgress != nil {
				t.Errorf("%s: a run is left in progress: %+v", s.name, s.st.InProgress)
			}
			return
		}
	}
	t.Errorf("%s: no run of %s ended %s (stage %q); runs:\n%s", s.name, commit, outcome, stage, s.r[s.name+"/runs"])
}

// applied checks that commit is the applied generation, and that it is what
// the profile, the boot loader's default and (unless it waits for its boot)
// the running system are.
func (s *snap) applied(t *testing.T, commit string) {
	t.Helper()
	a := s.st.Applied
	if a == nil || a.Commit != commit {
		t.Errorf("%s: applied %+v, want commit %s", s.name, a, commit)
		return
	}
	if s.profile() != a.StorePath || s.bootDefault() != a.StorePath {
		t.Errorf("%s: profile %s and boot default %s, want both the applied %s", s.name, s.profile(), s.bootDefault(), a.StorePath)
	}
	if s.st.PendingBoot == nil && s.current() != a.StorePath {
		t.Errorf("%s: the running system is %s, not the applied %s", s.name, s.current(), a.StorePath)
	}
	if v, err := metric(s.r[s.name+"/metrics"], "nix_gitops_applied_info", map[string]string{"commit": commit}); err != nil || v != 1 {
		t.Errorf("%s: metrics: want nix_gitops_applied_info{commit=%q} 1, got %v (%v)", s.name, commit, v, err)
	}
}

// contains checks that section of the snapshot holds each of want.
func (s *snap) contains(t *testing.T, section string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s.r[s.name+"/"+section], w) {
			t.Errorf("%s: %s lacks %q:\n%s", s.name, section, w, s.r[s.name+"/"+section])
		}
	}
}

// noEntryFor checks that no boot entry (profile generation) is toplevel.
func (s *snap) noEntryFor(t *testing.T, toplevel, why string) {
	t.Helper()
	for _, l := range s.r.lines(s.name + "/entries") {
		if strings.HasSuffix(l, " "+toplevel) {
			t.Errorf("%s: %s, but boot entry %q remains", s.name, why, l)
		}
	}
}

// storePathOf is the toplevel the snapshot's state knows for commit.
func (s *snap) storePathOf(commit string) string {
	for _, g := range append([]state.Generation{deref(s.st.Applied)}, s.st.History...) {
		if g.Commit == commit {
			return g.StorePath
		}
	}
	if p := s.st.PendingBoot; p != nil && p.Generation.Commit == commit {
		return p.Generation.StorePath
	}
	return ""
}

func deref(g *state.Generation) state.Generation {
	if g == nil {
		return state.Generation{}
	}
	return *g
}
