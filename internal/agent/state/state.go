// Package state is nix-gitops's memory: a JSON file (state.json in the
// state folder) written atomically, and the lock file that keeps two runs
// (a manual apply, the timer, the daemon) from overlapping.
//
// Atomic means: write a temp file in the same folder, fsync it, rename it
// over state.json, fsync the folder. A kill -9 at any instant leaves either
// the old or the new file, never a torn one. The state also records the
// run in progress (Attempt) before each risky step, so the next run knows
// what was interrupted and can put the machine back in a consistent state.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// FileName is the state file's name in the state folder.
const FileName = "state.json"

// Version is the state file's format version.
const Version = 1

// Stages of the pipeline, as recorded and as metric labels.
const (
	StagePoll     = "poll"
	StageFetch    = "fetch"
	StageRefuse   = "refuse" // fast-forward or signature refusal
	StageEval     = "eval"
	StageBuild    = "build"
	StageProfile  = "profile"
	StageSwitch   = "switch"
	StageHealth   = "health"
	StageRollback = "rollback"
	// StageBootHealth is the health gate of a boot-mode generation, run
	// after the reboot that boots it.
	StageBootHealth = "boot-health"
)

// Touches reports whether a run interrupted at stage may have changed the
// system: from the profile step on. Eval, build and the stages between build
// and switch (whatever their names) leave it alone.
func Touches(stage string) bool {
	switch stage {
	case StageProfile, StageSwitch, StageHealth, StageRollback, StageBootHealth:
		return true
	}
	return false
}

// Generation is one system generation the agent made or found.
type Generation struct {
	Commit     string    `json:"commit,omitempty"`
	Number     int       `json:"number,omitempty"`     // profile generation number
	StorePath  string    `json:"storePath,omitempty"`  // the toplevel
	SwitchMode string    `json:"switchMode,omitempty"` // "switch" or "boot"
	Time       time.Time `json:"time,omitzero"`
}

// Attempt is the run in progress, written before each risky step.
type Attempt struct {
	Commit  string    `json:"commit"`
	Stage   string    `json:"stage"`
	Started time.Time `json:"started"`
	PID     int       `json:"pid"`
	// Previous is what the profile pointed to before this attempt: what a
	// rollback re-activates.
	Previous *Generation `json:"previous,omitempty"`
	// Candidate is the new generation once the profile was set.
	Candidate *Generation `json:"candidate,omitempty"`
	// Tries counts attempts of this commit that were interrupted.
	Tries int `json:"tries,omitempty"`
}

// BadCommit is a commit that failed and is not retried until the head moves.
type BadCommit struct {
	Commit string    `json:"commit"`
	Stage  string    `json:"stage"`
	Error  string    `json:"error"`
	Time   time.Time `json:"time"`
	// RetryAfter, when set, is when the commit may be tried again although
	// the head did not move: failed builds, and failures whose cause is
	// outside the commit (a timeout, a killed build, an unreachable fetch).
	RetryAfter time.Time `json:"retryAfter,omitzero"`
	// Tries counts the failures of this commit that are retried, for the
	// back-off.
	Tries int `json:"tries,omitempty"`
}

// Pending is a generation activated with "boot" (a kernel or inhibitor
// change): it is the boot default and the applied generation, but runs only
// after a reboot, and its health gate runs then.
type Pending struct {
	Generation Generation `json:"generation"`
	// Running is the generation that kept running: what a failed gate
	// after the reboot goes back to.
	Running *Generation `json:"running,omitempty"`
	// Reason says why it was not switched to at once.
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// Result is the outcome of the last run.
type Result struct {
	Outcome string    `json:"outcome"` // applied, up-to-date, rolled-back, failed, refused, rollback-failed
	Commit  string    `json:"commit,omitempty"`
	Stage   string    `json:"stage,omitempty"`
	Error   string    `json:"error,omitempty"`
	Time    time.Time `json:"time"`
}

// State is the content of state.json.
type State struct {
	Version int    `json:"version"`
	Flake   string `json:"flake,omitempty"` // the ref last applied, rendered
	// Host is the nixosConfigurations name the agent builds (the verdict's
	// host label).
	Host string `json:"host,omitempty"`
	// Rollout is what rollout mode last saw of its refs (nil outside it).
	Rollout *Rollout `json:"rollout,omitempty"`
	// Applied is the generation the agent last activated successfully.
	Applied *Generation `json:"applied,omitempty"`
	// History holds earlier good generations, newest first (for rollback).
	History    []Generation `json:"history,omitempty"`
	InProgress *Attempt     `json:"inProgress,omitempty"`
	Last       *Result      `json:"last,omitempty"`
	BadCommits []BadCommit  `json:"badCommits,omitempty"`
	// Interrupted counts runs of a commit that were killed after the
	// system started to change; the second one marks the commit bad.
	Interrupted map[string]int `json:"interrupted,omitempty"`
	RemoteHead  string         `json:"remoteHead,omitempty"`
	LastCheck   time.Time      `json:"lastCheck,omitzero"`
	LastSuccess time.Time      `json:"lastSuccess,omitzero"`
	// PendingBoot is an applied generation waiting for the reboot that
	// boots it.
	PendingBoot *Pending `json:"pendingBoot,omitempty"`
	// RebootRequired: the applied generation's kernel, initrd, modules,
	// kernel parameters or firmware differ from the booted system's, or it
	// waits for its boot. Recomputed by every run.
	RebootRequired bool `json:"rebootRequired"`
	// RebootReasons names what differs.
	RebootReasons []string `json:"rebootReasons,omitempty"`
	// Drift says how the running system or the profile differ from the
	// applied generation (a manual switch or rollback), when they do.
	Drift         string `json:"drift,omitempty"`
	FirstBootDone bool   `json:"firstBootDone"`
	// Durations of the last fetch, eval, build, switch and health, seconds.
	Durations map[string]float64 `json:"durations,omitempty"`
	// Counters survive one-shot runs so textfile counters stay monotonic.
	Counters Counters `json:"counters"`
	// Secrets is what the secrets stage last did (secrets.go).
	Secrets *Secrets `json:"secrets,omitempty"`
}

// Counters are the monotonic totals behind the *_total metrics.
type Counters struct {
	Applies   int64            `json:"applies"`
	Rollbacks int64            `json:"rollbacks"`
	Checks    int64            `json:"checks"`
	Failures  map[string]int64 `json:"failures,omitempty"` // by stage
}

// IsBad reports whether commit is recorded as bad, and the record.
func (s *State) IsBad(commit string) (BadCommit, bool) {
	for _, b := range s.BadCommits {
		if b.Commit == commit {
			return b, true
		}
	}
	return BadCommit{}, false
}

// MarkBad records commit as bad. Only the most recent 20 are kept: a bad
// commit matters only while it is the head.
func (s *State) MarkBad(b BadCommit) {
	out := []BadCommit{b}
	for _, o := range s.BadCommits {
		if o.Commit != b.Commit && len(out) < 20 {
			out = append(out, o)
		}
	}
	s.BadCommits = out
}

// Unmark forgets a bad commit.
func (s *State) Unmark(commit string) {
	var out []BadCommit
	for _, o := range s.BadCommits {
		if o.Commit != commit {
			out = append(out, o)
		}
	}
	s.BadCommits = out
}

// Fail counts a failure at stage.
func (s *State) Fail(stage string) {
	if s.Counters.Failures == nil {
		s.Counters.Failures = map[string]int64{}
	}
	s.Counters.Failures[stage]++
}

// PushApplied makes g the applied generation and keeps the old one in
// History (at most 10).
func (s *State) PushApplied(g Generation) {
	if s.Applied != nil && s.Applied.StorePath != g.StorePath {
		s.History = append([]Generation{*s.Applied}, s.History...)
		if len(s.History) > 10 {
			s.History = s.History[:10]
		}
	}
	s.Applied = &g
}

// Load reads the state file in dir. A missing file is a fresh state. A
// file that cannot be parsed is an error naming the file and the fix: the
// agent never overwrites what it does not understand.
func Load(dir string) (*State, error) {
	p := filepath.Join(dir, FileName)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return &State{Version: Version}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("cannot parse state file %s: %w (move it aside to start afresh; the system profile is untouched)", p, err)
	}
	if s.Version > Version {
		return nil, fmt.Errorf("state file %s has format version %d, newer than this agent's %d: upgrade nix-gitops", p, s.Version, Version)
	}
	s.Version = Version
	return &s, nil
}

// Save writes s to dir atomically: temp file, fsync, rename, fsync dir.
func Save(dir string, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode state: %w", err)
	}
	return WriteFileAtomic(filepath.Join(dir, FileName), append(b, '\n'), 0o600)
}

// WriteFileAtomic writes data to path so that a crash leaves either the
// old content or the new, never a mix.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot create temp file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("cannot write %s: %w", tmp, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("cannot chmod %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("cannot fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cannot rename into %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot open folder for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("cannot fsync folder %s: %w", dir, err)
	}
	return nil
}
