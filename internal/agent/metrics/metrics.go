// Package metrics turns the agent's state into Prometheus metrics, for a
// node_exporter textfile (one-shot mode, written atomically after every
// run) and for HTTP on localhost (daemon mode). Both render the same state,
// so the two channels never disagree; the totals live in state.json and
// stay monotonic across one-shot runs.
package metrics

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

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
	descLastSuccess = gaugeFamily("nix_gitops_last_success_timestamp_seconds", "When the agent last applied a commit or found the machine up to date.")
	descLastCheck   = gaugeFamily("nix_gitops_last_check_timestamp_seconds", "When the agent last looked at the remote.")
	descApplied     = gaugeFamily("nix_gitops_applied_info", "The applied commit and generation (value 1).", "commit", "generation", "flake")
	descRemoteHead  = gaugeFamily("nix_gitops_remote_head_info", "The remote head last seen (value 1).", "commit")
	descDuration    = gaugeFamily("nix_gitops_stage_duration_seconds", "Duration of the last run of each stage.", "stage")
	descFailures    = counterFamily("nix_gitops_failures_total", "Failures, by stage.", "stage")
	descRollbacks   = counterFamily("nix_gitops_rollbacks_total", "Automatic and manual rollbacks.")
	descApplies     = counterFamily("nix_gitops_applies_total", "Commits applied.")
	descChecks      = counterFamily("nix_gitops_checks_total", "Looks at the remote head.")
	descReboot      = gaugeFamily("nix_gitops_reboot_required", "1 when the applied generation's kernel, initrd, modules, kernel parameters or firmware differ from the booted one, or it waits for its boot.")
	descLastOutcome = gaugeFamily("nix_gitops_last_outcome", "The last run's outcome (value 1).", "outcome", "stage")
	descBad         = gaugeFamily("nix_gitops_bad_commits", "Commits remembered as bad, not retried until the head moves.")
	descInProgress  = gaugeFamily("nix_gitops_in_progress", "1 while a run is between build and health gate (or was killed there).", "stage")
	descDrift       = gaugeFamily("nix_gitops_drift", "1 when the running system or the profile is not the applied generation (a manual switch or rollback).")
	descPending     = gaugeFamily("nix_gitops_pending_boot", "1 while an applied generation waits for the reboot that boots it (and its health gate).")
	descTarget      = gaugeFamily("nix_gitops_target_info", "The verdict on the commit the machine follows (value 1): converged, pending-reboot, applying, rolled-back, refused, failed or waiting-for-ref.", "host", "commit", "state")
)

// render turns the snapshot into samples.
func (c *Collector) render() samples {
	c.mu.Lock()
	st := c.st
	c.mu.Unlock()
	var out samples
	gauge := out.add
	counter := func(f *family, v int64, labels ...string) { out.add(f, float64(v), labels...) }
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
	if v := st.Verdict(); v != nil {
		gauge(descTarget, 1, v.Host, v.Commit, v.State)
	}
	for _, stage := range sortedKeys(st.Durations) {
		gauge(descDuration, st.Durations[stage], stage)
	}
	// Every built-in stage, so a counter exists before its first failure;
	// then any other stage that failed (the stages between build and
	// switch, see agent.Stage).
	known := []string{state.StagePoll, state.StageFetch, state.StageRefuse, state.StageEval, state.StageBuild,
		state.StageProfile, state.StageSwitch, state.StageHealth, state.StageRollback}
	for _, stage := range known {
		counter(descFailures, st.Counters.Failures[stage], stage)
	}
	for _, stage := range sortedKeys(st.Counters.Failures) {
		if !slices.Contains(known, stage) {
			counter(descFailures, st.Counters.Failures[stage], stage)
		}
	}
	counter(descRollbacks, st.Counters.Rollbacks)
	counter(descApplies, st.Counters.Applies)
	counter(descChecks, st.Counters.Checks)
	gauge(descReboot, b01(st.RebootRequired))
	if st.Last != nil {
		gauge(descLastOutcome, 1, st.Last.Outcome, st.Last.Stage)
	}
	gauge(descBad, float64(len(st.BadCommits)))
	gauge(descDrift, b01(st.Drift != ""))
	gauge(descPending, b01(st.PendingBoot != nil))
	if st.InProgress != nil {
		gauge(descInProgress, 1, st.InProgress.Stage)
	}
	renderSecrets(&out, st.Secrets)
	return out
}

func b01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Handler serves c over HTTP.
func Handler(c *Collector) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(c.render().encode())
	})
}

// WriteTextfile writes st as a node_exporter textfile at path, atomically
// (node_exporter must never read half a file).
func WriteTextfile(path string, st *state.State) error {
	c := &Collector{}
	c.Set(st)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cannot create textfile folder: %w", err)
	}
	return state.WriteFileAtomic(path, c.render().encode(), 0o644)
}
