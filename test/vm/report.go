//go:build vm

package vm

import (
	_ "embed"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// probeScript runs in the guest; see its header.
//
//go:embed probe.sh
var probeScript []byte

// Names of the test-only things handed to the guest as systemd credentials.
const (
	reportUnit = "homelab-vmtest-report.service"
	probeCred  = "homelab-vmtest.probe"
)

// probeParams are the probe's parameters for one boot.
type probeParams struct {
	admin     string
	steps     []string // see probe.sh
	waitLimit int      // seconds, per wait
	allow     []string
	deny      []string
	textfile  string
	git       string // host:port of the git server, as the guest reaches it
}

// reportUnitText is the unit that runs the probe. DefaultDependencies=no:
// it is wanted by default.target through the kernel command line, and the
// target's implicit After= on it would make a cycle with cloud-final.service,
// which orders itself after multi-user.target. Type=simple, so its start job
// never stays queued while it waits (a queued job keeps the system
// "starting", which the agent's health gate would see).
func reportUnitText(p probeParams) string {
	env := map[string]string{
		"VMTEST_ADMIN":      p.admin,
		"VMTEST_STEPS":      strings.Join(p.steps, " "),
		"VMTEST_GIT":        p.git,
		"VMTEST_WAIT_LIMIT": fmt.Sprint(p.waitLimit),
		"VMTEST_ALLOW":      strings.Join(p.allow, " "),
		"VMTEST_DENY":       strings.Join(p.deny, " "),
		"VMTEST_TEXTFILE":   p.textfile,
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("[Unit]\nDescription=homelab VM suite: report to the host, then power off (test only)\n")
	b.WriteString("DefaultDependencies=no\nAfter=basic.target cloud-final.service\n")
	b.WriteString("Conflicts=shutdown.target\nBefore=shutdown.target\n\n[Service]\nType=simple\n")
	b.WriteString("LoadCredential=" + probeCred + "\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "Environment=\"%s=%s\"\n", k, env[k])
	}
	b.WriteString("ExecStart=/bin/bash ${CREDENTIALS_DIRECTORY}/" + probeCred + "\n")
	return b.String()
}

var errIncomplete = errors.New("the probe's report is incomplete (no '=== end')")

// report is the probe's output by section.
type report map[string]string

// parseReport splits the probe's output at its "=== name" lines. It fails
// when the probe did not reach its end.
func parseReport(s string) (report, error) {
	r := report{}
	name := ""
	var body []string
	flush := func() {
		if name != "" {
			r[name] = strings.TrimSpace(strings.Join(body, "\n"))
		}
	}
	for _, line := range strings.Split(s, "\n") {
		if n, ok := strings.CutPrefix(line, "=== "); ok {
			flush()
			name, body = strings.TrimSpace(n), nil
			continue
		}
		body = append(body, line)
	}
	flush()
	if _, ok := r["end"]; !ok {
		return r, errIncomplete
	}
	return r, nil
}

// steps is the probe's own output of every step, in order.
func (r report) steps() string {
	var names []string
	for k := range r {
		if strings.HasPrefix(k, "step ") {
			names = append(names, k)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		var a, b int
		fmt.Sscanf(names[i], "step %d", &a)
		fmt.Sscanf(names[j], "step %d", &b)
		return a < b
	})
	var out strings.Builder
	for _, n := range names {
		fmt.Fprintf(&out, "%s\n%s\n", n, r[n])
	}
	return out.String()
}

// lines returns the non-empty lines of a section.
func (r report) lines(section string) []string {
	var out []string
	for _, l := range strings.Split(r[section], "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// property returns Key=value from a `systemctl show` section.
func (r report) property(section, key string) string {
	for _, l := range r.lines(section) {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v
		}
	}
	return ""
}

// metric returns the value of the sample of family name whose labels include
// all of want, read from the agent's node_exporter textfile.
func metric(textfile, name string, want map[string]string) (float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	// The report's sections are trimmed; the text format wants its final newline.
	fams, err := p.TextToMetricFamilies(strings.NewReader(textfile + "\n"))
	if err != nil {
		return 0, fmt.Errorf("cannot parse the metrics textfile: %w", err)
	}
	fam, ok := fams[name]
	if !ok {
		return 0, fmt.Errorf("the metrics textfile has no %s", name)
	}
	for _, m := range fam.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && got[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), nil
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), nil
		case m.GetUntyped() != nil:
			return m.GetUntyped().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("the metrics textfile has no %s sample with labels %v", name, want)
}
