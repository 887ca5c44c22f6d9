//go:build vm

package vm

import (
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// checkDNS (boot 5): dns01 resolves for itself (unbound with our DNS
// module's settings, /etc/resolv.conf naming 127.0.0.1), and its agent
// follows the flake by the git server's name (N1). A commit that loses the
// name's record (N2) switches fine and every unit runs, but the gate's "git
// reachable" check, which must open a new connection and so resolve the name
// again rather than reuse the one the fetch kept alive, fails: the commit is
// rolled back and the name resolves again.
func checkDNS(t *testing.T, r report, commits map[string]string) {
	t.Helper()
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
}
