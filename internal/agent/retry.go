// retry.go: back-off for an unreachable remote, and the stage timer.

package agent

import (
	"context"
	"errors"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/gitsource"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
	"github.com/homelab-infra/homelab-infra/internal/backoff"
)

// withRetry retries fn with exponential back-off: the remote may be
// unreachable because the network is not up yet at first boot. A remote
// that refused access is not retried: only a change of settings helps.
func (a *Agent) withRetry(ctx context.Context, what string, fn func() error) error {
	return backoff.Retry(ctx, a.backoff(), func(err error) bool { return errors.Is(err, gitsource.ErrDenied) || errors.Is(err, errWaitingForRef) },
		func(i int, wait time.Duration, err error) {
			a.Log.Warn("cannot "+what+"; retrying", "attempt", i, "of", a.Cfg.Retry.Attempts, "in", wait, "err", err)
		}, fn)
}

// backoff is the retry.* settings.
func (a *Agent) backoff() backoff.Policy {
	return backoff.Policy{Attempts: a.Cfg.Retry.Attempts, Initial: a.Cfg.Retry.Initial.D(), Max: a.Cfg.Retry.Max.D(),
		Sleep: func(ctx context.Context, d time.Duration) error { return a.Sleep(ctx, d) }}
}

func sleepCtx(ctx context.Context, d time.Duration) error { return backoff.Sleep(ctx, d) }

func (a *Agent) took(st *state.State, stage string, t0 time.Time) {
	if st.Durations == nil {
		st.Durations = map[string]float64{}
	}
	st.Durations[stage] = a.Now().Sub(t0).Seconds()
}
