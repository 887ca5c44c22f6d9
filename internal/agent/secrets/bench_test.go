//go:build vault

package secrets

import (
	"context"
	"testing"
)

// BenchmarkVaultRefreshNoop is the stage's cost in the daemon on a tick
// where nothing changed (a KV field and a certificate far from renewal,
// a valid token): Vault requests and logins per tick are printed; no login
// is the point. Figures are printed, never asserted.
func BenchmarkVaultRefreshNoop(b *testing.B) {
	f := newFixture(b)
	d := f.decl(b, nil)
	if _, err := f.stage.Refresh(context.Background(), d, &f.st); err != nil {
		b.Fatal(err)
	}
	c, _ := f.stage.Client(d)
	before := c.Stats
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.stage.Refresh(context.Background(), d, &f.st); err != nil {
			b.Fatal(err)
		}
	}
	s := diff(c.Stats, before)
	b.ReportMetric(float64(s.Reads+s.Logins+s.Renewals+s.Issues)/float64(b.N), "vault-req/op")
	b.ReportMetric(float64(s.Logins)/float64(b.N), "logins/op")
}
