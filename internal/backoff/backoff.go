// Package backoff retries an operation with exponential back-off: for a
// remote (git, Vault) that may not be reachable yet, at first boot when the
// network comes up late, or for a moment later.
package backoff

import (
	"context"
	"time"
)

// Policy is how often and how long to retry.
type Policy struct {
	// Attempts in all, the first included (at least 1).
	Attempts int
	// Initial wait, doubled after each failure up to Max.
	Initial, Max time.Duration
	// Sleep waits (tests shorten it) [Sleep].
	Sleep func(ctx context.Context, d time.Duration) error
}

// Retry runs fn until it succeeds, its error is final (final(err) is true),
// ctx is done or the attempts are used up, and returns fn's last error.
// Before each wait it calls retrying with the attempt number, the wait and
// the error, for a log line.
func Retry(ctx context.Context, p Policy, final func(error) bool, retrying func(attempt int, wait time.Duration, err error), fn func() error) error {
	wait := p.Initial
	if wait <= 0 {
		wait = time.Second
	}
	sleep := p.Sleep
	if sleep == nil {
		sleep = Sleep
	}
	for i := 1; ; i++ {
		err := fn()
		if err == nil || final(err) || ctx.Err() != nil || i >= p.Attempts {
			return err
		}
		if retrying != nil {
			retrying(i, wait, err)
		}
		if sleep(ctx, wait) != nil {
			return err
		}
		wait *= 2
		if p.Max > 0 {
			wait = min(wait, p.Max)
		}
	}
}

// Sleep waits d, or until ctx is done.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
