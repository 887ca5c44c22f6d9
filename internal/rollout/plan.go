// plan.go: a rollout's plan, a pure function of what Git holds (Input):
// which machines, in which waves, behind which gates. What the operator
// previews with `labctl rollout plan` is what runs.

package rollout

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Selector picks machines by the claims at the target commit; every given
// part must match (roles and tags: any of those listed).
type Selector struct {
	Roles []string `json:"roles,omitempty"`
	Tags  []string `json:"tags,omitempty"`
	Hosts []string `json:"hosts,omitempty"`
}

// Machine is one claim at the target commit, and where its deploy ref is.
type Machine struct {
	Host string   `json:"host"` // the nixosConfigurations name: deploy/<host>
	Role string   `json:"role,omitempty"`
	Tags []string `json:"tags,omitempty"`
	// From is the commit its deploy ref points to ("" when it has none).
	From string `json:"from,omitempty"`
	// Ahead: From descends from the target (a ref never moves backwards).
	Ahead bool `json:"-"`
	// Changed are the paths that differ between From and the target.
	Changed []string `json:"-"`
}

// Input is what a plan is made from; Load reads it from Git.
type Input struct {
	Target   string
	Policy   Policy
	Machines []Machine
	Selector Selector
	// Group names the rollout's mutex (one rollout per group at a time);
	// "" derives it from the selector.
	Group string
}

// Plan is a rollout's waves and gates.
type Plan struct {
	Target   string   `json:"target"`
	Group    string   `json:"group"`
	Selector Selector `json:"selector"`
	Policy   Policy   `json:"policy"`
	Waves    []Wave   `json:"waves"`
	Skipped  []Skip   `json:"skipped,omitempty"`
}

// Wave is machines advanced together (Parallelism at a time), behind a gate.
type Wave struct {
	Name   string `json:"name"`
	Canary bool   `json:"canary,omitempty"`
	// Gate, when set ("dns"), waits for a person's approval before the wave.
	Gate       string    `json:"gate,omitempty"`
	GateReason string    `json:"gateReason,omitempty"`
	Hosts      []Machine `json:"hosts"`
}

// Skip is a selected machine the rollout leaves alone, and why.
type Skip struct {
	Host   string `json:"host"`
	Reason string `json:"reason"`
}

// reasonAtTarget skips a machine whose deploy ref is the target already.
const reasonAtTarget = "already at the target"

// Gate names.
const (
	GateDNS    = "dns"
	GateReboot = "reboot"
)

// Hosts lists every host the plan advances, wave by wave.
func (p Plan) Hosts() []string {
	var hs []string
	for _, w := range p.Waves {
		for _, m := range w.Hosts {
			hs = append(hs, m.Host)
		}
	}
	return hs
}

// Selected lists every machine the selector picked, the skipped ones too.
func (p Plan) Selected() []string {
	hs := p.Hosts()
	for _, s := range p.Skipped {
		hs = append(hs, s.Host)
	}
	slices.Sort(hs)
	return hs
}

// MakePlan plans a rollout: the selected machines whose deploy ref is not
// already at (or past) the target, those behind the DNS gate last; the
// canary first, alone; then waves of WaveSize, never mixing gated and
// ungated machines.
func MakePlan(in Input) (Plan, error) {
	p := Plan{Target: in.Target, Group: in.Group, Selector: in.Selector, Policy: in.Policy}
	if p.Group == "" {
		p.Group = in.Selector.group()
	}
	var open, gated []Machine
	reasons := map[string]string{}
	matched := 0
	for _, m := range in.Machines {
		if !in.Selector.matches(m) {
			continue
		}
		matched++
		switch {
		case m.From == in.Target:
			p.Skipped = append(p.Skipped, Skip{Host: m.Host, Reason: reasonAtTarget})
			continue
		case m.Ahead:
			p.Skipped = append(p.Skipped, Skip{Host: m.Host, Reason: "its deploy ref is past the target (" + short(m.From) + "): a rollout never moves a ref backwards"})
			continue
		}
		if why := dnsReason(in.Policy.Gates.DNS, m); why != "" {
			reasons[m.Host] = why
			gated = append(gated, m)
		} else {
			open = append(open, m)
		}
	}
	if matched == 0 {
		return Plan{}, fmt.Errorf("the selector %s matches no Machine claim at %s: check the roles, tags and host names against crossplane/claims", in.Selector, short(in.Target))
	}
	byHost := func(a, b Machine) int { return strings.Compare(a.Host, b.Host) }
	slices.SortFunc(open, byHost)
	slices.SortFunc(gated, byHost)

	all := append(append([]Machine{}, open...), gated...)
	isGated := func(m Machine) bool { return reasons[m.Host] != "" }
	var cur *Wave
	flush := func() {
		if cur != nil && len(cur.Hosts) > 0 {
			p.Waves = append(p.Waves, *cur)
		}
		cur = nil
	}
	for i, m := range all {
		canary := i < in.Policy.Canary
		if cur == nil || (cur.Canary && !canary) || len(cur.Hosts) == in.Policy.WaveSize || (cur.Gate != "") != isGated(m) {
			flush()
			cur = &Wave{Canary: canary}
			if isGated(m) {
				cur.Gate = GateDNS
			}
		}
		cur.Hosts = append(cur.Hosts, m)
		if cur.Gate != "" {
			var why []string
			for _, h := range cur.Hosts {
				why = append(why, reasons[h.Host])
			}
			cur.GateReason = strings.Join(why, "; ")
		}
	}
	flush()
	for i := range p.Waves {
		p.Waves[i].Name = fmt.Sprintf("wave-%d", i+1)
		if p.Waves[i].Canary {
			p.Waves[i].Name = "canary"
		}
	}
	return p, nil
}

// dnsReason says why a machine is behind the DNS gate, or "".
func dnsReason(g *DNSGate, m Machine) string {
	if g == nil {
		return ""
	}
	if slices.Contains(g.Roles, m.Role) {
		return m.Host + " has role " + m.Role
	}
	for _, c := range m.Changed {
		for _, p := range g.Paths {
			if c == p || strings.HasPrefix(c, strings.TrimSuffix(p, "/")+"/") {
				return "the change to " + m.Host + " touches " + c
			}
		}
	}
	return ""
}

func (s Selector) matches(m Machine) bool {
	if len(s.Roles) > 0 && !slices.Contains(s.Roles, m.Role) {
		return false
	}
	if len(s.Tags) > 0 && !slices.ContainsFunc(s.Tags, func(t string) bool { return slices.Contains(m.Tags, t) }) {
		return false
	}
	if len(s.Hosts) > 0 && !slices.Contains(s.Hosts, m.Host) {
		return false
	}
	return true
}

var groupUnsafe = regexp.MustCompile(`[^a-z0-9-]+`)

// group is the default mutex name: what the selector picks.
func (s Selector) group() string {
	var parts []string
	add := func(kind string, vs []string) {
		if len(vs) > 0 {
			vs = slices.Sorted(slices.Values(vs))
			parts = append(parts, kind+"-"+strings.Join(vs, "-"))
		}
	}
	add("role", s.Roles)
	add("tag", s.Tags)
	add("host", s.Hosts)
	if len(parts) == 0 {
		return "all"
	}
	g := groupUnsafe.ReplaceAllString(strings.ToLower(strings.Join(parts, "-")), "-")
	if len(g) > 50 {
		g = g[:50]
	}
	return strings.Trim(g, "-")
}

func (s Selector) String() string {
	var parts []string
	for kind, vs := range map[string][]string{"role": s.Roles, "tag": s.Tags, "host": s.Hosts} {
		if len(vs) > 0 {
			parts = append(parts, kind+"="+strings.Join(vs, ","))
		}
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "(all machines)"
	}
	return strings.Join(parts, " ")
}

// WorkflowWave is one wave as the WorkflowTemplate iterates over it.
type WorkflowWave struct {
	Name   string   `json:"name"`
	Canary bool     `json:"canary"`
	Gate   string   `json:"gate"`
	Why    string   `json:"why"`
	Hosts  []string `json:"hosts"`
	// List is Hosts joined by commas, for a flag (--host=a,b).
	List string `json:"list"`
}

// WorkflowWaves are the plan's waves for withParam: names only, every
// field present (a workflow's when expressions read them all).
func WorkflowWaves(p Plan) []WorkflowWave {
	out := []WorkflowWave{}
	for _, w := range p.Waves {
		ww := WorkflowWave{Name: w.Name, Canary: w.Canary, Gate: w.Gate, Why: w.GateReason, Hosts: []string{}}
		for _, m := range w.Hosts {
			ww.Hosts = append(ww.Hosts, m.Host)
		}
		ww.List = strings.Join(ww.Hosts, ",")
		out = append(out, ww)
	}
	return out
}
