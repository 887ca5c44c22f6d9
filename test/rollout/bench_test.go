//go:build rollout

package rollout

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/rollout"
)

// BenchmarkRolloutQueries: the Prometheus queries one rollout of the whole
// fleet makes (verdict reads while machines converge, the canary's alerts),
// and its wall time. Figures are printed, never asserted.
func BenchmarkRolloutQueries(b *testing.B) {
	f := newFleet(b, map[string]string{"w1": "web", "w2": "web", "w3": "web", "d1": "dns"})
	f.waitVerdicts(map[string]rollout.Verdict{"w1": {State: "waiting-for-ref"}, "w2": {State: "waiting-for-ref"},
		"w3": {State: "waiting-for-ref"}, "d1": {State: "waiting-for-ref"}})
	for i := 0; i < b.N; i++ {
		c := f.commit(defaultPolicy, nil)
		d, prom := f.driver(rollout.GateDNS)
		p := f.plan(d, c, rollout.Selector{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		t0 := time.Now()
		r := d.Run(ctx, p)
		wall := time.Since(t0)
		cancel()
		if r.Outcome != rollout.Completed {
			b.Fatalf("rollout: %+v", r)
		}
		q := prom.Queries.Load()
		b.ReportMetric(float64(q), "queries/rollout")
		b.ReportMetric(float64(q)/float64(len(r.Advanced)), "queries/machine")
		fmt.Printf("\nrollout of %d machines in %d waves (poll %s, soak %s): %d Prometheus queries (%.1f a machine), %s\n",
			len(r.Advanced), len(p.Waves), d.Poll, p.Policy.Soak.D(), q, float64(q)/float64(len(r.Advanced)), wall.Round(100*time.Millisecond))
	}
}
