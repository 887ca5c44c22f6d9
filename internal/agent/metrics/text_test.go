package metrics

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// oracle renders s with client_golang's registry and expfmt's text encoder,
// what this package used before it wrote the format itself. The test links
// them; the agent does not.
type oracle samples

func (o oracle) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(o, ch) }

func (o oracle) Collect(ch chan<- prometheus.Metric) {
	descs := map[*family]*prometheus.Desc{}
	for _, x := range o {
		d, ok := descs[x.f]
		if !ok {
			d = prometheus.NewDesc(x.f.name, x.f.help, x.f.labels, nil)
			descs[x.f] = d
		}
		typ := prometheus.GaugeValue
		if x.f.typ == "counter" {
			typ = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(d, typ, x.v, x.values...)
	}
}

func (o oracle) encode(t *testing.T) []byte {
	t.Helper()
	r := prometheus.NewPedanticRegistry()
	r.MustRegister(o)
	mfs, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// TestTextFormatParses: what the agent serves and writes is, byte for byte,
// what client_golang would write for the same state, and Prometheus's own
// parser reads it back.
func TestTextFormatParses(t *testing.T) {
	now := time.Unix(1700000000, 123e6).UTC()
	cases := map[string]struct {
		reason string
		st     state.State
	}{
		"Empty": {
			reason: "A first run's state still has the counters and the gauges that are always there.",
		},
		"Full": {
			reason: "Every family, with label values that need escaping and several samples a family.",
			st: state.State{
				Flake:          "git+https://h/r?ref=main#dns01",
				Applied:        &state.Generation{Commit: "abc", Number: 3, StorePath: "/nix/store/x"},
				RemoteHead:     "def",
				LastSuccess:    now,
				LastCheck:      now,
				RebootRequired: true,
				Drift:          "profile",
				PendingBoot:    &state.Pending{},
				InProgress:     &state.Attempt{Stage: "switch"},
				BadCommits:     []state.BadCommit{{}, {}},
				Durations:      map[string]float64{"build": 1.5, "fetch": 0.25, "eval": 1e-7},
				Counters:       state.Counters{Applies: 2, Rollbacks: 1, Checks: 7, Failures: map[string]int64{"health": 1, "secrets": 3}},
				Last:           &state.Result{Outcome: "rolled-back", Stage: "health"},
				Secrets: &state.Secrets{
					Error: "vault: down", VaultReachable: false, LastSuccess: now, TokenExpires: now,
					Logins: 1, Renewals: 2, Changes: 3, Restarts: 4, Failures: 5,
					Items: map[string]state.SecretItem{
						"dot-cert": {Kind: "pki", Source: `pki/issue/"dns" \ role`, NotAfter: now},
						"token":    {Kind: "kv", Source: "kv/data/dns01\nfield", Error: "missing"},
						// "a" sorts before "a!" as a value, after it as text.
						"a":  {Kind: "kv", Source: "kv/data/a"},
						"a!": {Kind: "kv", Source: "kv/data/b"},
					},
				},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := &Collector{}
			c.Set(&tc.st)
			s := c.render()
			got := s.encode()
			if diff := cmp.Diff(string(oracle(s).encode(t)), string(got)); diff != "" {
				t.Errorf("%s\nencode(): -client_golang, +ours:\n%s", tc.reason, diff)
			}
			p := expfmt.NewTextParser(model.LegacyValidation)
			mfs, err := p.TextToMetricFamilies(bytes.NewReader(got))
			if err != nil {
				t.Fatalf("%s\nPrometheus cannot parse what we wrote: %v\n%s", tc.reason, err, got)
			}
			n := 0
			for _, mf := range mfs {
				n += len(mf.GetMetric())
			}
			if n != len(s) {
				t.Errorf("%s\nparsed %d samples, rendered %d", tc.reason, n, len(s))
			}
		})
	}
}
