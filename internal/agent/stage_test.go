package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/agent/config"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// recordStage is a Stage that records what it saw and fails with err.
type recordStage struct {
	name string
	err  error
	seen []Candidate
}

func (s *recordStage) Name() string { return s.name }
func (s *recordStage) Run(_ context.Context, c Candidate) error {
	s.seen = append(s.seen, c)
	return s.err
}

// TestPreSwitchStage: the stages between build and switch see the built
// toplevel and the generation to go back to; a failing stage leaves the
// machine as it was (no switch), and only a Temporary failure is retried.
// Real git and nix; the toplevel is internal/testflake's stand-in.
func TestPreSwitchStage(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix")
	t.Setenv("NIX_CONFIG", testflake.NixConf)
	cases := map[string]struct {
		reason    string
		err       error
		want      string
		wantRetry bool
	}{
		"Passes":    {reason: "a passing stage lets the switch happen", want: OutcomeApplied},
		"Fails":     {reason: "a failing stage ends the run before the switch; the commit is bad", err: errors.New("no secret"), want: OutcomeFailed},
		"Temporary": {reason: "a temporary failure is retried later, not held against the commit", err: Temporary(errors.New("vault sealed")), want: OutcomeFailed, wantRetry: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			rec := filepath.Join(dir, "rec")
			repo, err := testflake.New(filepath.Join(dir, "git"), testflake.Options{RecordDir: rec})
			if err != nil {
				t.Fatal(err)
			}
			commit, err := repo.Commit(testflake.Spec{Hosts: map[string]testflake.System{"h1": {Version: "1"}}}, testflake.CommitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cfg := config.Config{Flake: repo.FlakeRef(repo.URL(), "h1"), StateDir: filepath.Join(dir, "state"),
				Profile: filepath.Join(dir, "profiles", "system"), BootedSystem: filepath.Join(dir, "booted")}
			cfg.Defaults()
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			sg := &recordStage{name: "secrets", err: tc.err}
			a.PreSwitch = []Stage{sg}
			res, err := a.Apply(context.Background(), context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != tc.want {
				t.Fatalf("%s: outcome %s (%v), want %s", tc.reason, res.Outcome, res.Err, tc.want)
			}
			if len(sg.seen) != 1 || sg.seen[0].Commit != commit || sg.seen[0].Toplevel == "" || sg.seen[0].Previous != nil {
				t.Errorf("%s: the stage saw %+v, want one candidate of %s with its toplevel and no previous generation", tc.reason, sg.seen, commit)
			}
			calls, _ := testflake.Calls(rec)
			switched := len(calls) > 0
			if switched != (tc.err == nil) {
				t.Errorf("%s: switch calls %v", tc.reason, calls)
			}
			st, err := state.Load(cfg.StateDir)
			if err != nil {
				t.Fatal(err)
			}
			if tc.err == nil {
				return
			}
			if res.Stage != "secrets" || st.InProgress != nil {
				t.Errorf("%s: stage %q, in progress %+v; want stage secrets and nothing in progress", tc.reason, res.Stage, st.InProgress)
			}
			b, bad := st.IsBad(commit)
			if diff := cmp.Diff(true, bad); diff != "" {
				t.Errorf("%s: commit bad (-want, +got):\n%s", tc.reason, diff)
			}
			if got := !b.RetryAfter.IsZero(); got != tc.wantRetry {
				t.Errorf("%s: retry later = %v, want %v", tc.reason, got, tc.wantRetry)
			}
			if _, err := os.Stat(filepath.Join(dir, "profiles", "system")); !os.IsNotExist(err) {
				t.Errorf("%s: the profile was created although the run stopped before the switch", tc.reason)
			}
		})
	}
}
