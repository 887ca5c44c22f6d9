// Package config is nix-gitops's configuration: a JSON file (default
// /etc/nix-gitops/config.json, easy to write from Nix with builtins.toJSON)
// with flags laid over it, and the flake ref read from /etc/nix-flake-target
// unless the file or --flake names one.
//
// The config file's keys are listed in KeysUsage, which `nix-gitops --help`
// prints; the flags that override them in FlagUsage.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/flakeref"
)

// KeysUsage lists the config file's keys (all optional; durations are Go
// duration strings such as "90s", "10m", "1h"; defaults in brackets). It
// is the contract with the NixOS module, which writes the file with
// builtins.toJSON.
const KeysUsage = `  flake                string   flake ref to follow; overrides flakeTargetFile
  flakeTargetFile      string   file holding the flake ref  [/etc/nix-flake-target]
  hostname             string   host for a ref without #host [the machine's hostname]
  stateDir             string   state, clone, lock           [/var/lib/nix-gitops]
  profile              string   system profile set and rolled back [/nix/var/nix/profiles/system]
  bootedSystem         string   the running kernel's system  [/run/booted-system]
  currentSystem        string   the activated system         [/run/current-system]
  allowNonFastForward  bool     accept a head that does not descend from the applied commit [false]
  onKernelChange       string   "switch" or "boot" when kernel/initrd changed [switch]
  everyBoot            bool     the boot-time start applies on every boot, not only the first [false]
  onDrift              string   "reapply" or "report" when the running system or profile is not the applied one [reapply]
  reboot.allow         string   "never" (report only), "window", or "approved" (rollout mode: when reboot/<host> names the commit) [never]
  reboot.window.lower  string   HH:MM, start of the reboot window (allow "window"; empty: any time)
  reboot.window.upper  string   HH:MM, end of the reboot window
  reboot.command       []string the program and arguments that reboot [shutdown -r +1 <why>]
  rollout.enable       bool     follow deploy/<host>, moved by the rollout driver, instead of the flake ref's branch [false]
  rollout.deployRef    string   the ref followed in rollout mode [refs/heads/deploy/<host>]
  rollout.rebootRef    string   the ref that approves a reboot into a commit (or its ancestors) [refs/heads/reboot/<host>]
  floorCommit          string   never apply a commit that does not descend from this one (the template's own)
  verify.mode          string   "none", "ssh" or "gpg"       [none]
  verify.allowedSigners string  ssh: git's allowed-signers file; gpg: armoured public keys
  verify.allCommits    bool     verify every commit since the applied one, not only the head [false]
  auth.sshKeyFile      string   SSH deploy key (private key file, mode 0600)
  auth.sshKnownHosts   string   pinned known_hosts for the git server (required with sshKeyFile)
  auth.tokenFile       string   HTTPS token, read at use, never logged
  auth.tokenUser       string   HTTPS user name sent with the token [git]
  timeouts.fetch|eval|build|switch|health  durations [2m, 10m, 1h, 10m, 2m]
  retry.attempts       int      tries to reach the remote before giving up [6]
  retry.initial        duration first back-off, doubled per try [5s]
  retry.max            duration longest back-off [2m]
  poll.interval        duration daemon poll interval [5m]
  poll.jitter          duration random extra wait per poll [30s]
  poll.method          string   "auto" (in-process ref lookup over http(s), git otherwise) or "git" [auto]
  health.systemd       bool     check systemctl is-system-running [true]
  health.requiredUnits []string units that must be active
  health.tcp           []string host:port that must accept a connection
  health.http          []string URLs that must answer 2xx
  health.script        string   program that must exit 0
  health.gitReachable  bool     the remote must still answer after the switch [true]
  health.settle        duration how long to wait for "starting" units to settle [1m]
  metrics.textfile     string   node_exporter textfile written after each apply [""]
  metrics.listen       string   daemon mode HTTP address, localhost only [127.0.0.1:9971]
  log.format           string   "text" or "json" [text]
  log.level            string   "debug", "info", "warn" or "error" [info]
`

// Default locations.
const (
	DefaultConfigFile    = "/etc/nix-gitops/config.json"
	DefaultTargetFile    = "/etc/nix-flake-target"
	DefaultStateDir      = "/var/lib/nix-gitops"
	DefaultProfile       = "/nix/var/nix/profiles/system"
	DefaultBootedSystem  = "/run/booted-system"
	DefaultCurrentSystem = "/run/current-system"
	DefaultMetricsAddr   = "127.0.0.1:9971"
)

// Duration is a time.Duration written as a Go duration string in JSON.
type Duration time.Duration

// UnmarshalJSON accepts "90s"-style strings.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`want a duration string such as "90s" or "10m"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf(`want a duration string such as "90s" or "10m": %w`, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Config is the whole configuration. JSON keys are the contract with the
// NixOS module; see the package comment.
type Config struct {
	Flake               string   `json:"flake,omitempty"`
	FlakeTargetFile     string   `json:"flakeTargetFile,omitempty"`
	Hostname            string   `json:"hostname,omitempty"`
	StateDir            string   `json:"stateDir,omitempty"`
	Profile             string   `json:"profile,omitempty"`
	BootedSystem        string   `json:"bootedSystem,omitempty"`
	CurrentSystem       string   `json:"currentSystem,omitempty"`
	AllowNonFastForward bool     `json:"allowNonFastForward,omitempty"`
	OnKernelChange      string   `json:"onKernelChange,omitempty"`
	EveryBoot           bool     `json:"everyBoot,omitempty"`
	OnDrift             string   `json:"onDrift,omitempty"`
	Reboot              Reboot   `json:"reboot"`
	Rollout             Rollout  `json:"rollout"`
	FloorCommit         string   `json:"floorCommit,omitempty"`
	Verify              Verify   `json:"verify"`
	Auth                Auth     `json:"auth"`
	Timeouts            Timeouts `json:"timeouts"`
	Retry               Retry    `json:"retry"`
	Poll                Poll     `json:"poll"`
	Health              Health   `json:"health"`
	Metrics             Metrics  `json:"metrics"`
	Log                 Log      `json:"log"`
}

// Verify configures commit signature verification.
type Verify struct {
	Mode           string `json:"mode,omitempty"`
	AllowedSigners string `json:"allowedSigners,omitempty"`
	// AllCommits verifies every commit between the applied one (or the
	// floor) and the new head, not only the head.
	AllCommits bool `json:"allCommits,omitempty"`
}

// Reboot is the policy for generations that take effect only at boot, as
// NixOS's system.autoUpgrade allowReboot/rebootWindow: "never" only reports
// that a reboot is required; "window" reboots, within the window when one
// is given.
type Reboot struct {
	Allow  string       `json:"allow,omitempty"`
	Window RebootWindow `json:"window"`
	// Command reboots the machine [shutdown -r +1 <why>]; set, it is run
	// also where systemd does not run the machine.
	Command []string `json:"command,omitempty"`
}

// Rollout is rollout mode (design D13): the machine follows its own ref,
// which the rollout driver fast-forwards to commits on the flake ref's
// branch, instead of that branch. Until the deploy ref exists a machine that
// has applied nothing follows the branch once, so a new machine converges
// with the cluster down; after that a missing ref is reported, never
// silently replaced by the branch.
type Rollout struct {
	Enable    bool   `json:"enable,omitempty"`
	DeployRef string `json:"deployRef,omitempty"`
	RebootRef string `json:"rebootRef,omitempty"`
}

// Refs are the deploy and reboot refs for host, defaults filled in.
func (r Rollout) Refs(host string) (deploy, reboot string) {
	deploy, reboot = r.DeployRef, r.RebootRef
	if deploy == "" {
		deploy = "refs/heads/deploy/" + host
	}
	if reboot == "" {
		reboot = "refs/heads/reboot/" + host
	}
	return deploy, reboot
}

// RebootWindow is a daily time window, HH:MM local time; lower > upper
// crosses midnight.
type RebootWindow struct {
	Lower string `json:"lower,omitempty"`
	Upper string `json:"upper,omitempty"`
}

// Auth configures git credentials. Only file paths live here; the secrets
// themselves are read from the files when needed.
type Auth struct {
	SSHKeyFile    string `json:"sshKeyFile,omitempty"`
	SSHKnownHosts string `json:"sshKnownHosts,omitempty"`
	TokenFile     string `json:"tokenFile,omitempty"`
	TokenUser     string `json:"tokenUser,omitempty"`
}

// Timeouts bound each stage.
type Timeouts struct {
	Fetch  Duration `json:"fetch,omitempty"`
	Eval   Duration `json:"eval,omitempty"`
	Build  Duration `json:"build,omitempty"`
	Switch Duration `json:"switch,omitempty"`
	Health Duration `json:"health,omitempty"`
}

// Retry is the back-off for an unreachable remote ("network not up yet"). A
// remote that answers and refuses access is not retried.
type Retry struct {
	Attempts int      `json:"attempts,omitempty"`
	Initial  Duration `json:"initial,omitempty"`
	Max      Duration `json:"max,omitempty"`
}

// Poll configures the daemon's loop and how the remote head is looked up.
type Poll struct {
	Interval Duration  `json:"interval,omitempty"`
	Jitter   *Duration `json:"jitter,omitempty"` // nil: default; "0s" turns jitter off
	Method   string    `json:"method,omitempty"`
}

// Health is the gate run after a switch.
type Health struct {
	Systemd       *bool    `json:"systemd,omitempty"`
	RequiredUnits []string `json:"requiredUnits,omitempty"`
	TCP           []string `json:"tcp,omitempty"`
	HTTP          []string `json:"http,omitempty"`
	Script        string   `json:"script,omitempty"`
	GitReachable  *bool    `json:"gitReachable,omitempty"`
	Settle        Duration `json:"settle,omitempty"`
}

// Metrics says where metrics go.
type Metrics struct {
	Textfile string `json:"textfile,omitempty"`
	Listen   string `json:"listen,omitempty"`
}

// Log configures log/slog.
type Log struct {
	Format string `json:"format,omitempty"`
	Level  string `json:"level,omitempty"`
}

// Parse decodes a config file's bytes. Unknown keys are errors, so a typo
// never silently falls back to a default. It does not apply defaults.
func Parse(b []byte) (Config, error) {
	var c Config
	if len(bytes.TrimSpace(b)) == 0 {
		return c, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, explain(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("cannot parse config: trailing data after the JSON object")
	}
	return c, nil
}

func explain(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("cannot parse config: field %q: want a %s, not a JSON %s", te.Field, te.Type, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("cannot parse config: JSON syntax error at byte %d: %w", se.Offset, err)
	}
	if s := err.Error(); strings.HasPrefix(s, "json: unknown field ") {
		return fmt.Errorf("cannot parse config: unknown key %s: check its spelling against `nix-gitops --help`", strings.TrimPrefix(s, "json: unknown field "))
	}
	return fmt.Errorf("cannot parse config: %w", err)
}

// Load reads the config file at path. A missing file is not an error when
// optional is true (the default path need not exist).
func Load(path string, optional bool) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if optional && errors.Is(err, os.ErrNotExist) {
			return Config{}, nil
		}
		return Config{}, fmt.Errorf("cannot read config file: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Defaults fills every unset field.
func (c *Config) Defaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defD := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	def(&c.FlakeTargetFile, DefaultTargetFile)
	def(&c.StateDir, DefaultStateDir)
	def(&c.Profile, DefaultProfile)
	def(&c.BootedSystem, DefaultBootedSystem)
	def(&c.CurrentSystem, DefaultCurrentSystem)
	def(&c.OnDrift, "reapply")
	def(&c.Reboot.Allow, "never")
	def(&c.OnKernelChange, "switch")
	def(&c.Verify.Mode, "none")
	def(&c.Auth.TokenUser, "git")
	defD(&c.Timeouts.Fetch, 2*time.Minute)
	defD(&c.Timeouts.Eval, 10*time.Minute)
	defD(&c.Timeouts.Build, time.Hour)
	defD(&c.Timeouts.Switch, 10*time.Minute)
	defD(&c.Timeouts.Health, 2*time.Minute)
	if c.Retry.Attempts == 0 {
		c.Retry.Attempts = 6
	}
	defD(&c.Retry.Initial, 5*time.Second)
	defD(&c.Retry.Max, 2*time.Minute)
	defD(&c.Poll.Interval, 5*time.Minute)
	if c.Poll.Jitter == nil {
		j := Duration(30 * time.Second)
		c.Poll.Jitter = &j
	}
	def(&c.Poll.Method, "auto")
	t := true
	if c.Health.Systemd == nil {
		c.Health.Systemd = &t
	}
	if c.Health.GitReachable == nil {
		c.Health.GitReachable = &t
	}
	defD(&c.Health.Settle, time.Minute)
	def(&c.Metrics.Listen, DefaultMetricsAddr)
	def(&c.Log.Format, "text")
	def(&c.Log.Level, "info")
}

// InWindow reports whether t's time of day is inside the reboot window (any
// time when no window is set). lower > upper crosses midnight.
func (r Reboot) InWindow(t time.Time) bool {
	if r.Window.Lower == "" {
		return true
	}
	now := t.Format("15:04")
	lo, hi := r.Window.Lower, r.Window.Upper
	if lo <= hi {
		return now >= lo && now < hi
	}
	return now >= lo || now < hi
}

// Target resolves the flake ref to follow: the flake key (or --flake) when
// set, otherwise the first non-empty, non-comment line of flakeTargetFile.
// A ref without #host gets the hostname key, or the machine's hostname.
func (c *Config) Target() (flakeref.Ref, error) {
	src, s := "flake (--flake)", c.Flake
	if s == "" {
		b, err := os.ReadFile(c.FlakeTargetFile)
		if err != nil {
			return flakeref.Ref{}, fmt.Errorf("cannot read the flake target: %w (cloud-init writes it at first boot; or set --flake)", err)
		}
		src = c.FlakeTargetFile
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				s = line
				break
			}
		}
	}
	r, err := flakeref.Parse(s)
	if err != nil {
		return flakeref.Ref{}, fmt.Errorf("%s: %w", src, err)
	}
	if r.Host == "" {
		h := c.Hostname
		if h == "" {
			if h, err = os.Hostname(); err != nil {
				return flakeref.Ref{}, fmt.Errorf("cannot get the hostname for a flake ref without #host: %w", err)
			}
			h, _, _ = strings.Cut(h, ".")
		}
		if !flakeref.ValidHost(h) {
			return flakeref.Ref{}, fmt.Errorf("%s: the ref has no #host and the hostname %q is not a nixosConfigurations name: add #HOST", src, h)
		}
		r = r.WithHost(h)
	}
	return r, nil
}
