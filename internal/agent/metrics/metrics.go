// Package metrics turns the agent's state into Prometheus metrics, for a
// node_exporter textfile (one-shot mode, written atomically after every
// run) and for HTTP on localhost (daemon mode). Both render the same state,
// so the two channels never disagree; the totals live in state.json and
// stay monotonic across one-shot runs.
package metrics

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// Collector exposes a state snapshot.
type Collector struct {
	mu sync.Mutex
	st state.State
}

// Set replaces the snapshot.
func (c *Collector) Set(st *state.State) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st = *st
}

var (
	descLastSuccess = prometheus.NewDesc("nix_gitops_last_success_timestamp_seconds", "When the agent last applied a commit or found the machine up to date.", nil, nil)
	descLastCheck   = prometheus.NewDesc("nix_gitops_last_check_timestamp_seconds", "When the agent last looked at the remote.", nil, nil)
	descApplied     = prometheus.NewDesc("nix_gitops_applied_info", "The applied commit and generation (value 1).", []string{"commit", "generation", "flake"}, nil)
	descRemoteHead  = prometheus.NewDesc("nix_gitops_remote_head_info", "The remote head last seen (value 1).", []string{"commit"}, nil)
	descDuration    = prometheus.NewDesc("nix_gitops_stage_duration_seconds", "Duration of the last run of each stage.", []string{"stage"}, nil)
	descFailures    = prometheus.NewDesc("nix_gitops_failures_total", "Failures, by stage.", []string{"stage"}, nil)
	descRollbacks   = prometheus.NewDesc("nix_gitops_rollbacks_total", "Automatic and manual rollbacks.", nil, nil)
	descApplies     = prometheus.NewDesc("nix_gitops_applies_total", "Commits applied.", nil, nil)
	descChecks      = prometheus.NewDesc("nix_gitops_checks_total", "Looks at the remote head.", nil, nil)
	descReboot      = prometheus.NewDesc("nix_gitops_reboot_required", "1 when the applied generation's kernel or initrd differs from the booted one.", nil, nil)
	descLastOutcome = prometheus.NewDesc("nix_gitops_last_outcome", "The last run's outcome (value 1).", []string{"outcome", "stage"}, nil)
	descBad         = prometheus.NewDesc("nix_gitops_bad_commits", "Commits remembered as bad, not retried until the head moves.", nil, nil)
	descInProgress  = prometheus.NewDesc("nix_gitops_in_progress", "1 while a run is between build and health gate (or was killed there).", []string{"stage"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLastSuccess, descLastCheck, descApplied, descRemoteHead, descDuration, descFailures,
		descRollbacks, descApplies, descChecks, descReboot, descLastOutcome, descBad, descInProgress} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	st := c.st
	c.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	if !st.LastSuccess.IsZero() {
		gauge(descLastSuccess, float64(st.LastSuccess.UnixMilli())/1000)
	}
	if !st.LastCheck.IsZero() {
		gauge(descLastCheck, float64(st.LastCheck.UnixMilli())/1000)
	}
	if st.Applied != nil {
		gauge(descApplied, 1, st.Applied.Commit, fmt.Sprint(st.Applied.Number), st.Flake)
	}
	if st.RemoteHead != "" {
		gauge(descRemoteHead, 1, st.RemoteHead)
	}
	for _, stage := range sortedKeys(st.Durations) {
		gauge(descDuration, st.Durations[stage], stage)
	}
	for _, stage := range []string{state.StagePoll, state.StageFetch, state.StageRefuse, state.StageEval, state.StageBuild,
		state.StageProfile, state.StageSwitch, state.StageHealth, state.StageRollback} {
		counter(descFailures, st.Counters.Failures[stage], stage)
	}
	counter(descRollbacks, st.Counters.Rollbacks)
	counter(descApplies, st.Counters.Applies)
	counter(descChecks, st.Counters.Checks)
	reboot := 0.0
	if st.RebootRequired {
		reboot = 1
	}
	gauge(descReboot, reboot)
	if st.Last != nil {
		gauge(descLastOutcome, 1, st.Last.Outcome, st.Last.Stage)
	}
	gauge(descBad, float64(len(st.BadCommits)))
	if st.InProgress != nil {
		gauge(descInProgress, 1, st.InProgress.Stage)
	}
}

func sortedKeys(m map[string]float64) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Registry returns a registry with c in it.
func Registry(c *Collector) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(c)
	return r
}

// Handler serves c over HTTP.
func Handler(c *Collector) http.Handler {
	return promhttp.HandlerFor(Registry(c), promhttp.HandlerOpts{})
}

// WriteTextfile writes st as a node_exporter textfile at path, atomically
// (node_exporter must never read half a file).
func WriteTextfile(path string, st *state.State) error {
	c := &Collector{}
	c.Set(st)
	mfs, err := Registry(c).Gather()
	if err != nil {
		return fmt.Errorf("cannot gather metrics: %w", err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("cannot encode metrics: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cannot create textfile folder: %w", err)
	}
	return state.WriteFileAtomic(path, b.Bytes(), 0o644)
}
