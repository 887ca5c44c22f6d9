// drift.go: is the machine still running what the agent applied?

package agent

import (
	"strings"

	"github.com/homelab-infra/homelab-infra/internal/agent/activation"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// drift describes how the machine differs from the applied generation, or
// is "": the profile must point to it, and the running system must be it
// (or, while a boot-mode generation waits for its reboot, the generation
// that kept running). A no-op tick pays two readlinks for this.
func (a *Agent) drift(st *state.State) string {
	if st.Applied == nil || st.Applied.StorePath == "" {
		return ""
	}
	var d []string
	if cur, ok, err := activation.Current(a.Cfg.Profile); err == nil && ok && cur.StorePath != st.Applied.StorePath {
		d = append(d, "the system profile points to "+cur.StorePath)
	}
	want := st.Applied.StorePath
	if p := st.PendingBoot; p != nil {
		want = ""
		if p.Running != nil {
			want = p.Running.StorePath
		}
	}
	if r, ok := activation.Running(a.Cfg.CurrentSystem); ok && want != "" && r != want {
		d = append(d, "the running system is "+r)
	}
	return strings.Join(d, "; ")
}
