//go:build vm

package vm

import (
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// dnsBoot is boot 7 of TestClaimBootsAndConverges: dns01 resolves for
// itself (unbound with our DNS module's settings, /etc/resolv.conf naming
// 127.0.0.1), and its agent follows the flake by the git server's name. A
// commit that loses the name's record switches fine and every unit runs,
// but the gate's "git reachable" check, which must open a new connection and
// so resolve the name again rather than reuse the one the fetch kept alive,
// fails: the commit is rolled back and the name resolves again.
func dnsBoot(t *testing.T, g *guest, params func(...string) probeParams, commits map[string]string) {
	t.Helper()
	r7, ok := bootAndReport(t, g, bootOptions{name: "boot7", timeout: bootLimit}, params(
		"boot", "advance:N1", "apply", "wait:applied", "resolve:dns", "snap:dns",
		"advance:N2", "apply", "wait:rolled-back", "resolve:dnsback", "snap:dnsbroken"))
	if !ok {
		return
	}
	checkBoot(t, "boot7", r7, func(t *testing.T, r report) {
		s := r.snap(t, "dns")
		s.ran(t, "applied", commits["N1"], "")
		s.applied(t, commits["N1"])
		if !strings.Contains(r["dns/resolve"], gitAddr) {
			t.Errorf("dns: %s through dns01's own unbound: %q, want %s", gitName, r["dns/resolve"], gitAddr)
		}
		b := r.snap(t, "dnsbroken")
		b.ran(t, "rolled-back", commits["N2"], state.StageHealth)
		b.applied(t, commits["N1"])
		if bad, ok := b.st.IsBad(commits["N2"]); !ok || bad.Stage != state.StageHealth {
			t.Errorf("dnsbroken: want %s remembered as bad at the health stage, got %+v", commits["N2"], b.st.BadCommits)
		}
		b.contains(t, "runs", gitName)
		if !strings.Contains(r["dnsback/resolve"], gitAddr) {
			t.Errorf("dnsbroken: after the rollback %s resolves to %q, want %s again", gitName, r["dnsback/resolve"], gitAddr)
		}
		if f := b.r.lines(b.name + "/failed-units"); len(f) > 0 {
			t.Errorf("dnsbroken: failed units: %q", f)
		}
	})
}
