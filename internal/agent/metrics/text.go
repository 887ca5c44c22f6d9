// text.go: Prometheus's text exposition format (0.0.4), written here rather
// than with client_golang: the daemon serves a few dozen constant samples,
// and client_golang with the protobuf runtime it links adds about 4 MB of
// resident memory to a process that idles for months (make bench).
// TestTextFormatParses reads the output back with Prometheus's own parser.

package metrics

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"strings"
)

// family is one metric family: name, help, type and label names.
type family struct {
	name, help, typ string
	labels          []string
}

func gaugeFamily(name, help string, labels ...string) *family {
	return &family{name: name, help: help, typ: "gauge", labels: labels}
}

func counterFamily(name, help string, labels ...string) *family {
	return &family{name: name, help: help, typ: "counter", labels: labels}
}

// sample is one value of a family, with its label values in the family's
// label order.
type sample struct {
	f      *family
	values []string
	v      float64
}

// samples collects what a render emits.
type samples []sample

func (s *samples) add(f *family, v float64, values ...string) {
	*s = append(*s, sample{f: f, values: values, v: v})
}

// encode writes s as client_golang's registry gathers and encodes it:
// families by name, each sample's label pairs by label name, samples by
// those pairs; a family without samples is left out.
func (s samples) encode() []byte {
	byName := map[string][]sample{}
	for _, x := range s {
		byName[x.f.name] = append(byName[x.f.name], x)
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	var b bytes.Buffer
	for _, n := range names {
		xs := byName[n]
		f := xs[0].f
		b.WriteString("# HELP " + n + " " + escapeHelp(f.help) + "\n")
		b.WriteString("# TYPE " + n + " " + f.typ + "\n")
		order := byLabelName(f.labels)
		key := func(x sample) []string {
			k := make([]string, len(order))
			for j, i := range order {
				k[j] = x.values[i]
			}
			return k
		}
		// By label values, compared one by one, as client_golang orders
		// them (not by the rendered text, where `"` and `,` would sort).
		slices.SortFunc(xs, func(a, b sample) int { return slices.Compare(key(a), key(b)) })
		for _, x := range xs {
			b.WriteString(n + labelPairs(f.labels, order, x.values) + " " + formatFloat(x.v) + "\n")
		}
	}
	return b.Bytes()
}

// byLabelName is the order of names' indexes that sorts them.
func byLabelName(names []string) []int {
	idx := make([]int, len(names))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return strings.Compare(names[a], names[b]) })
	return idx
}

func labelPairs(names []string, order []int, values []string) string {
	if len(names) == 0 {
		return ""
	}
	pairs := make([]string, 0, len(names))
	for _, i := range order {
		pairs = append(pairs, names[i]+`="`+escapeLabel(values[i])+`"`)
	}
	return "{" + strings.Join(pairs, ",") + "}"
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
