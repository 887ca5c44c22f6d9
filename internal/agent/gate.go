// gate.go: the health gate after a switch, configured from health.*.

package agent

import (
	"github.com/homelab-infra/homelab-infra/internal/agent/health"
)

func (a *Agent) gate() *health.Gate {
	h := a.Cfg.Health
	g := &health.Gate{Systemd: a.Systemd, OwnUnit: health.OwnUnit(), CheckSystemd: *h.Systemd, RequiredUnits: h.RequiredUnits, TCP: h.TCP, HTTP: h.HTTP,
		Script: h.Script, Settle: h.Settle.D(), Probes: a.Probes}
	if *h.GitReachable {
		g.GitReachable = a.Git.Reachable
	}
	return g
}
