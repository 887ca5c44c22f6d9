package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/agent/state"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// Rollout mode (design D13): the machine follows deploy/<host>, which only
// the rollout driver moves, and reports its verdict on that commit in the
// metric nix_gitops_target_info and in status --json. These tests move the
// refs in the bare repository as the driver does (git update-ref).

// rolloutLab is a lab in rollout mode.
func rolloutLab(t *testing.T) *lab {
	l := newLab(t)
	l.cfg["rollout"] = map[string]any{"enable": true}
	return l
}

// setRef points refs/heads/name at sha on the remote ("" deletes it).
func (l *lab) setRef(name, sha string) {
	l.t.Helper()
	args := []string{"update-ref", "refs/heads/" + name, sha}
	if sha == "" {
		args = []string{"update-ref", "-d", "refs/heads/" + name}
	}
	if _, err := testflake.Git(l.repo.Bare, nil, args...); err != nil {
		l.t.Fatal(err)
	}
}

// verdict is the target_info series in the textfile and the verdict in
// status --json, which must agree.
func (l *lab) verdict() state.Verdict {
	l.t.Helper()
	s := l.status()
	if s.Verdict == nil {
		l.t.Fatalf("status --json has no verdict")
	}
	v := *s.Verdict
	key := "nix_gitops_target_info{commit=" + v.Commit + ",host=" + v.Host + ",state=" + v.State + "}"
	m := l.metrics()
	n := 0
	for k := range m {
		if strings.HasPrefix(k, "nix_gitops_target_info{") {
			n++
		}
	}
	if m[key] != 1 || n != 1 {
		l.t.Errorf("the textfile must hold exactly the verdict of status --json, %s 1; has %d series, that one %v", key, n, m[key])
	}
	return v
}

// TestRolloutFollowsDeployRef: a new machine whose deploy ref does not exist
// yet follows the branch once (it converges with the cluster down); after
// that a missing deploy ref is reported as waiting-for-ref and nothing is
// taken from the branch; once the driver makes the ref, the machine follows
// it, and only it.
func TestRolloutFollowsDeployRef(t *testing.T) {
	l := rolloutLab(t)
	c1 := l.commit(testflake.System{Version: "1"})
	l.apply(0)
	if diff := cmp.Diff(state.Verdict{Host: "h1", Commit: c1, State: state.VerdictConverged}, l.verdict()); diff != "" {
		t.Errorf("first boot from main (-want, +got):\n%s", diff)
	}
	if s := l.status(); s.Rollout == nil || s.Rollout.Ref != "refs/heads/main" {
		t.Errorf("first boot must say it followed the branch: %+v", s.Rollout)
	}

	c2 := l.commit(testflake.System{Version: "2"})
	r := l.apply(21)
	if !strings.Contains(r.stderr, "refs/heads/deploy/h1") {
		t.Errorf("the missing deploy ref must be named:\n%s", r.stderr)
	}
	if s := l.status(); s.Applied.Commit != c1 || s.Last.Outcome != "waiting-for-ref" {
		t.Errorf("without its deploy ref the machine must keep %s and wait: applied %s, last %+v", c1[:8], s.Applied.Commit[:8], s.Last)
	}
	if diff := cmp.Diff(state.Verdict{Host: "h1", State: state.VerdictWaitingForRef}, l.verdict()); diff != "" {
		t.Errorf("waiting (-want, +got):\n%s", diff)
	}

	l.setRef("deploy/h1", c2)
	l.apply(0)
	if diff := cmp.Diff(state.Verdict{Host: "h1", Commit: c2, State: state.VerdictConverged}, l.verdict()); diff != "" {
		t.Errorf("after the driver made deploy/h1 (-want, +got):\n%s", diff)
	}

	// main moves on; the machine stays where its ref is.
	l.commit(testflake.System{Version: "3"})
	l.apply(10)
	if s := l.status(); s.Applied.Commit != c2 || s.Rollout.Ref != "refs/heads/deploy/h1" {
		t.Errorf("main moved: the machine must stay on deploy/h1 at %s, applied %s, following %s", c2[:8], s.Applied.Commit[:8], s.Rollout.Ref)
	}
}

// TestRolloutFirstBootFollowsExistingRef: a machine whose deploy ref exists
// at its first boot follows it, not the branch.
func TestRolloutFirstBootFollowsExistingRef(t *testing.T) {
	l := rolloutLab(t)
	c1 := l.commit(testflake.System{Version: "1"})
	l.commit(testflake.System{Version: "2"})
	l.setRef("deploy/h1", c1)
	l.apply(0)
	if diff := cmp.Diff(state.Verdict{Host: "h1", Commit: c1, State: state.VerdictConverged}, l.verdict()); diff != "" {
		t.Errorf("(-want, +got):\n%s", diff)
	}
}

// TestRolloutVerdicts: each outcome of the followed commit is one bounded
// label value, never error text.
func TestRolloutVerdicts(t *testing.T) {
	l := rolloutLab(t)
	script := filepath.Join(l.dir, "health.sh")
	// Version 3 is unhealthy once it runs.
	if err := os.WriteFile(script, []byte("#!/bin/sh\ncase $(cat "+filepath.Join(l.rec, "current-system")+"/version) in\n3) echo 'version 3 is broken' >&2; exit 1 ;;\nesac\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	l.cfg["health"] = map[string]any{"settle": "1s", "script": script}
	c1 := l.commit(testflake.System{Version: "1"})
	l.setRef("deploy/h1", c1)
	l.apply(0)

	c2 := l.commit(testflake.System{Version: "2", BuildFail: true})
	l.setRef("deploy/h1", c2)
	l.apply(21)
	if diff := cmp.Diff(state.Verdict{Host: "h1", Commit: c2, State: state.VerdictFailed}, l.verdict()); diff != "" {
		t.Errorf("a build failure (-want, +got):\n%s", diff)
	}

	c3 := l.commit(testflake.System{Version: "3"})
	l.setRef("deploy/h1", c3)
	l.apply(20)
	if diff := cmp.Diff(state.Verdict{Host: "h1", Commit: c3, State: state.VerdictRolledBack}, l.verdict()); diff != "" {
		t.Errorf("a failed health gate (-want, +got):\n%s", diff)
	}
	if s := l.status(); s.Applied.Commit != c1 {
		t.Errorf("the rolled-back machine must run %s, runs %s", c1[:8], s.Applied.Commit[:8])
	}

	// A ref moved backwards (no driver does this; a hand might).
	c4 := l.commit(testflake.System{Version: "4"})
	l.setRef("deploy/h1", c4)
	l.apply(0)
	l.setRef("deploy/h1", c1)
	l.apply(21)
	if diff := cmp.Diff(state.Verdict{Host: "h1", Commit: c1, State: state.VerdictRefused}, l.verdict()); diff != "" {
		t.Errorf("a ref moved backwards (-want, +got):\n%s", diff)
	}
}

// TestRolloutRebootApproval: with reboot.allow "approved", a generation that
// needs a reboot waits for reboot/<host> to name its commit (or a
// descendant), then reboots once. The reboot command records its calls.
func TestRolloutRebootApproval(t *testing.T) {
	l := rolloutLab(t)
	calls := filepath.Join(l.dir, "reboots")
	reboot := filepath.Join(l.dir, "reboot.sh")
	if err := os.WriteFile(reboot, []byte("#!/bin/sh\necho \"$@\" >>"+calls+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	l.cfg["onKernelChange"] = "boot"
	l.cfg["reboot"] = map[string]any{"allow": "approved", "command": []string{reboot, "now"}}
	rebootCalls := func() int {
		b, _ := os.ReadFile(calls)
		return strings.Count(string(b), "\n")
	}

	c1 := l.commit(testflake.System{Version: "1", Kernel: "k1"})
	l.setRef("deploy/h1", c1)
	l.apply(0)
	l.booted(l.status().Applied.StorePath)

	c2 := l.commit(testflake.System{Version: "2", Kernel: "k2"})
	l.setRef("deploy/h1", c2)
	l.setRef("reboot/h1", c1) // an older approval does not cover c2
	l.apply(0)
	if diff := cmp.Diff(state.Verdict{Host: "h1", Commit: c2, State: state.VerdictPendingReboot}, l.verdict()); diff != "" {
		t.Errorf("a kernel change (-want, +got):\n%s", diff)
	}
	if n := rebootCalls(); n != 0 {
		t.Fatalf("rebooted %d times without an approval of %s", n, c2[:8])
	}
	l.apply(10)
	if n := rebootCalls(); n != 0 {
		t.Fatalf("rebooted %d times without an approval of %s", n, c2[:8])
	}

	// The approval names a descendant of c2: it covers c2.
	c3 := l.commit(testflake.System{Version: "3", Kernel: "k2"})
	l.setRef("reboot/h1", c3)
	l.apply(10)
	l.apply(10)
	if n := rebootCalls(); n != 1 {
		t.Fatalf("the approval must reboot exactly once, rebooted %d times", n)
	}

	// The reboot boots the pending generation; its gate passes.
	s := l.status()
	l.booted(s.PendingBoot.Generation.StorePath)
	l.apply(0)
	if diff := cmp.Diff(state.Verdict{Host: "h1", Commit: c2, State: state.VerdictConverged}, l.verdict()); diff != "" {
		t.Errorf("after the approved reboot (-want, +got):\n%s", diff)
	}
}

// TestRolloutPollIsOneRequest: in rollout mode a no-op tick reads the deploy
// ref, the reboot ref and the branch in one HTTP request.
func TestRolloutPollIsOneRequest(t *testing.T) {
	l := rolloutLab(t)
	srv := &testflake.Server{Root: filepath.Dir(l.repo.Bare)}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	l.cfg["flake"] = l.repo.FlakeRef(hs.URL+"/"+filepath.Base(l.repo.Bare), "h1")
	c1 := l.commit(testflake.System{Version: "1"})
	l.setRef("deploy/h1", c1)
	l.setRef("reboot/h1", c1)
	l.apply(0)
	before := srv.Requests.Load()
	l.apply(10)
	if n := srv.Requests.Load() - before; n != 1 {
		t.Errorf("a no-op tick in rollout mode made %d requests, want 1", n)
	}
	if s := l.status(); s.Rollout.Reboot != c1 {
		t.Errorf("the poll must have read reboot/h1 = %s too, got %q", c1[:8], s.Rollout.Reboot)
	}
}
