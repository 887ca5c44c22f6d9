package agent

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/config"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

func TestSkipBadCommit(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := map[string]struct {
		reason   string
		bad      *state.BadCommit
		retryBad bool
		allowNFF bool
		want     bool
	}{
		"NotBad":          {reason: "a commit never seen is tried", want: false},
		"RolledBack":      {reason: "a commit rolled back waits for a new commit", bad: &state.BadCommit{Stage: state.StageHealth}, want: true},
		"RetryBadFlag":    {reason: "--retry-bad tries it anyway", bad: &state.BadCommit{Stage: state.StageSwitch}, retryBad: true, want: false},
		"RefusedNFF":      {reason: "a refusal is lifted by --allow-non-fast-forward", bad: &state.BadCommit{Stage: state.StageRefuse}, allowNFF: true, want: false},
		"RefusedStill":    {reason: "without it the refusal stands", bad: &state.BadCommit{Stage: state.StageRefuse}, want: true},
		"BuildRecent":     {reason: "a failed build is left alone for a while", bad: &state.BadCommit{Stage: state.StageBuild, RetryAfter: now.Add(time.Minute)}, want: true},
		"BuildRetryLater": {reason: "and tried again after that: the cause may not be the commit", bad: &state.BadCommit{Stage: state.StageBuild, RetryAfter: now.Add(-time.Minute)}, want: false},
		"EvalNoRetry":     {reason: "an eval error is the commit's: no retry", bad: &state.BadCommit{Stage: state.StageEval}, want: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a := &Agent{Cfg: config.Config{AllowNonFastForward: tc.allowNFF}, RetryBad: tc.retryBad,
				Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }}
			st := &state.State{}
			if tc.bad != nil {
				tc.bad.Commit = "c"
				st.MarkBad(*tc.bad)
			}
			if _, got := a.skip(st, "c"); got != tc.want {
				t.Errorf("%s: skip = %v, want %v", tc.reason, got, tc.want)
			}
		})
	}
}
