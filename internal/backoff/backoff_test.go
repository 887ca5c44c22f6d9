package backoff

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRetry(t *testing.T) {
	errTransient, errFinal := errors.New("transient"), errors.New("final")
	cases := map[string]struct {
		reason    string
		policy    Policy
		results   []error // fn's answers, in order
		wantCalls int
		wantWaits []time.Duration
		wantErr   error
	}{
		"Success": {reason: "the first success ends it", policy: Policy{Attempts: 5, Initial: time.Second},
			results: []error{errTransient, nil}, wantCalls: 2, wantWaits: []time.Duration{time.Second}},
		"Doubling": {reason: "waits double up to Max; the attempts bound the calls", policy: Policy{Attempts: 5, Initial: time.Second, Max: 3 * time.Second},
			results: []error{errTransient, errTransient, errTransient, errTransient, errTransient}, wantCalls: 5,
			wantWaits: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}, wantErr: errTransient},
		"Final": {reason: "a final error is not retried", policy: Policy{Attempts: 5, Initial: time.Second},
			results: []error{errFinal}, wantCalls: 1, wantErr: errFinal},
		"OneAttempt": {reason: "no retries without attempts to spare", policy: Policy{Attempts: 1},
			results: []error{errTransient}, wantCalls: 1, wantErr: errTransient},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var waits []time.Duration
			tc.policy.Sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
			calls := 0
			err := Retry(context.Background(), tc.policy, func(err error) bool { return errors.Is(err, errFinal) }, nil, func() error {
				calls++
				return tc.results[calls-1]
			})
			if !errors.Is(err, tc.wantErr) || calls != tc.wantCalls {
				t.Errorf("%s: err %v after %d calls, want %v after %d", tc.reason, err, calls, tc.wantErr, tc.wantCalls)
			}
			if diff := cmp.Diff(tc.wantWaits, waits); diff != "" {
				t.Errorf("%s: waits (-want, +got):\n%s", tc.reason, diff)
			}
		})
	}
}
