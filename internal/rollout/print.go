// print.go: plans and reports for people, as tables (labctl prints them as
// JSON or YAML for programs).

package rollout

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/homelab-infra/homelab-infra/internal/runningstate"
)

// PrintPlan writes p as a table: one line per machine, wave by wave, with
// the gates in between.
func PrintPlan(w io.Writer, p Plan) error {
	fmt.Fprintf(w, "rollout of %s to %s (group %s): canary %d, soak %s, waves of %d with %d in flight, host budget %s\n",
		p.Selector, p.Target, p.Group, p.Policy.Canary, p.Policy.Soak.D(), p.Policy.WaveSize, p.Policy.Parallelism, p.Policy.HostBudget.D())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WAVE\tHOST\tROLE\tFROM")
	for _, wv := range p.Waves {
		if wv.Gate != "" {
			fmt.Fprintf(tw, "-- gate %s: %s\t\t\t\n", wv.Gate, wv.GateReason)
		}
		for _, m := range wv.Hosts {
			from := short(m.From)
			if from == "" {
				from = "(no deploy ref)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", wv.Name, m.Host, m.Role, from)
		}
	}
	if p.Policy.Gates.Reboot {
		fmt.Fprintf(tw, "-- gate reboot: before machines that wait for a reboot; then one at a time\t\t\t\n")
	}
	for _, s := range p.Skipped {
		fmt.Fprintf(tw, "skipped\t%s\t\t%s\n", s.Host, s.Reason)
	}
	return tw.Flush()
}

// PrintReport writes r for people.
func PrintReport(w io.Writer, r Report) error {
	fmt.Fprintf(w, "rollout to %s: %s\n", short(r.Target), r.Outcome)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, v := range r.Advanced {
		fmt.Fprintf(tw, "advanced\t%s\t%s %s\n", v.Host, v.State, short(v.Commit))
	}
	for _, h := range r.Reboots {
		fmt.Fprintf(tw, "rebooted\t%s\t\n", h)
	}
	if r.Failed != nil {
		fmt.Fprintf(tw, "halted\t%s\t%s\n", r.Failed.Host, r.Failed.Reason)
	}
	if r.Gate != "" {
		fmt.Fprintf(tw, "gate\t%s\t%s: approve with --approve %s\n", r.Gate, r.GateReason, r.Gate)
	}
	if len(r.RebootPending) > 0 {
		fmt.Fprintf(tw, "reboot pending\t%s\t\n", strings.Join(r.RebootPending, ", "))
	}
	if len(r.Pending) > 0 {
		fmt.Fprintf(tw, "not advanced\t%s\tkeep their refs and commits\n", strings.Join(r.Pending, ", "))
	}
	return tw.Flush()
}

// PrintStates writes machines' states as a table, lagging ones marked.
func PrintStates(w io.Writer, ss []runningstate.State) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tDESIRED\tRUNNING\tVERDICT\tREBOOT\tLAST FAILURE\tCONVERGED")
	for _, s := range ss {
		verdict := s.Verdict
		switch {
		case verdict == "":
			verdict = "(none)"
		case s.Stale:
			verdict += " (stale)"
		}
		reboot := ""
		if s.PendingReboot {
			reboot = "pending"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", s.Host, short(s.Desired), short(s.Running), verdict, reboot, s.LastFailure, s.Converged)
	}
	return tw.Flush()
}
