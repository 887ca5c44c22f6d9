package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// TestConvergeNoopNewCommit: converge from nothing, then a no-op tick,
// then a new commit applied; each state visible in `status --json` and in
// the metrics textfile. Fakes: the stand-in toplevel (testflake); no
// systemd as PID 1, so its checks are skipped.
func TestConvergeNoopNewCommit(t *testing.T) {
	l := newLab(t)
	c1 := l.commit(testflake.System{Version: "1", Kernel: "k1"})

	// 1. From nothing: no profile, no state.
	r := l.apply(0)
	s := l.status()
	if s.Applied == nil || s.Applied.Commit != c1 || s.Applied.Number != 1 || s.Last.Outcome != "applied" {
		t.Fatalf("after the first apply: status %+v, want applied %s generation 1", s.State, c1)
	}
	out1 := s.Applied.StorePath
	if l.profileTarget() != out1 || testflake.Current(l.rec) != out1 {
		t.Errorf("profile → %q, switched to %q; want both %q", l.profileTarget(), testflake.Current(l.rec), out1)
	}
	if !strings.Contains(r.stderr, `check=systemd status=skipped detail="skipped: no systemd"`) {
		t.Errorf("the systemd check must report \"skipped: no systemd\" here:\n%s", r.stderr)
	}
	m := l.metrics()
	for k, want := range map[string]float64{
		`nix_gitops_applied_info{commit=` + c1 + `,flake=` + s.Target + `,generation=1}`: 1,
		`nix_gitops_applies_total`:                        1,
		`nix_gitops_last_outcome{outcome=applied,stage=}`: 1,
		`nix_gitops_reboot_required`:                      0,
		`nix_gitops_failures_total{stage=build}`:          0,
	} {
		if m[k] != want {
			t.Errorf("metric %s = %v, want %v", k, m[k], want)
		}
	}
	for _, stage := range []string{"fetch", "eval", "build", "switch", "health"} {
		if _, ok := m[`nix_gitops_stage_duration_seconds{stage=`+stage+`}`]; !ok {
			t.Errorf("no duration metric for stage %s", stage)
		}
	}
	if m["nix_gitops_last_success_timestamp_seconds"] == 0 {
		t.Errorf("no last success timestamp")
	}

	// 2. No-op: one ref lookup (one git ls-remote over file://), no eval,
	// no build, no switch.
	r = l.apply(10)
	if got := logValue(r.stderr, "run finished", "processes"); got != "1" {
		t.Errorf("a no-op tick started %s processes, want 1 (git ls-remote)\n%s", got, r.stderr)
	}
	if s := l.status(); s.Last.Outcome != "up-to-date" || s.Applied.Commit != c1 {
		t.Errorf("after the no-op: %+v", s.Last)
	}
	if m := l.metrics(); m["nix_gitops_checks_total"] != 2 || m[`nix_gitops_last_outcome{outcome=up-to-date,stage=}`] != 1 {
		t.Errorf("no-op metrics: checks %v, outcome %v", m["nix_gitops_checks_total"], m[`nix_gitops_last_outcome{outcome=up-to-date,stage=}`])
	}

	// 3. A new commit.
	c2 := l.commit(testflake.System{Version: "2", Kernel: "k1"})
	l.apply(0)
	s = l.status()
	if s.Applied.Commit != c2 || s.Applied.Number != 2 || len(s.History) != 1 || s.History[0].Commit != c1 {
		t.Fatalf("after the new commit: applied %+v, history %+v", s.Applied, s.History)
	}
	out2 := s.Applied.StorePath
	want := testflake.Join(testflake.Succeeded("switch", out1), testflake.Succeeded("switch", out2))
	if diff := cmp.Diff(want, l.calls()); diff != "" {
		t.Errorf("switch-to-configuration calls: -want, +got:\n%s", diff)
	}
	if m := l.metrics(); m[`nix_gitops_applied_info{commit=`+c2+`,flake=`+s.Target+`,generation=2}`] != 1 || m["nix_gitops_applies_total"] != 2 {
		t.Errorf("metrics after the new commit: %v", m)
	}
}

// TestNixWithoutFlakesConfigured: a NixOS host need not turn on flakes in
// nix.conf for the agent: it passes --extra-experimental-features
// "nix-command flakes" itself (as nixos-rebuild-ng does). Here nix.conf
// (NIX_CONFIG) has no experimental features at all.
func TestNixWithoutFlakesConfigured(t *testing.T) {
	l := newLab(t)
	var env []string
	for _, e := range l.env {
		if !strings.HasPrefix(e, "NIX_CONFIG=") {
			env = append(env, e)
		}
	}
	l.env = append(env, "NIX_CONFIG=sandbox = false\nsubstituters =\nbuild-users-group =\n")
	c1 := l.commit(testflake.System{Version: "1"})
	l.apply(0)
	if s := l.status(); s.Applied == nil || s.Applied.Commit != c1 {
		t.Errorf("not applied without flakes in nix.conf: %+v", s.Last)
	}
}
