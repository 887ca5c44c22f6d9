// validate.go: the checks a defaulted config must pass before a run uses it.

package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/flakeref"
)

// Validate checks a defaulted config. Each error names the key and the fix.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	abs := func(key, p string) {
		if p != "" && !filepath.IsAbs(p) {
			bad("%s: %q is not an absolute path: give a path starting with /", key, p)
		}
	}
	abs("flakeTargetFile (--flake-file)", c.FlakeTargetFile)
	abs("stateDir (--state-dir)", c.StateDir)
	abs("profile (--profile)", c.Profile)
	abs("bootedSystem (--booted-system)", c.BootedSystem)
	abs("currentSystem (--current-system)", c.CurrentSystem)
	abs("verify.allowedSigners (--allowed-signers)", c.Verify.AllowedSigners)
	abs("auth.sshKeyFile (--ssh-key)", c.Auth.SSHKeyFile)
	abs("auth.sshKnownHosts (--ssh-known-hosts)", c.Auth.SSHKnownHosts)
	abs("auth.tokenFile (--token-file)", c.Auth.TokenFile)
	abs("health.script", c.Health.Script)
	abs("metrics.textfile (--metrics-textfile)", c.Metrics.Textfile)
	if c.Flake != "" {
		if _, err := flakeref.Parse(c.Flake); err != nil {
			bad("flake (--flake): %w", err)
		}
	}
	if c.Hostname != "" && !flakeref.ValidHost(c.Hostname) {
		bad("hostname: %q is not a nixosConfigurations name (letters, digits, _ and -)", c.Hostname)
	}
	switch c.OnKernelChange {
	case "switch", "boot":
	default:
		bad(`onKernelChange (--on-kernel-change): %q: want "switch" or "boot"`, c.OnKernelChange)
	}
	switch c.OnDrift {
	case "reapply", "report":
	default:
		bad(`onDrift: %q: want "reapply" or "report"`, c.OnDrift)
	}
	switch c.Reboot.Allow {
	case "never", "window":
	case "approved":
		if !c.Rollout.Enable {
			bad(`reboot.allow: "approved" waits for reboot/<host>, which only rollout mode reads: set rollout.enable, or choose "never" or "window"`)
		}
	default:
		bad(`reboot.allow: %q: want "never", "window" or "approved"`, c.Reboot.Allow)
	}
	for key, v := range map[string]string{"rollout.deployRef": c.Rollout.DeployRef, "rollout.rebootRef": c.Rollout.RebootRef} {
		if v != "" && (!strings.HasPrefix(v, "refs/") || strings.ContainsAny(v, " ~^:?*[\\\n") || strings.Contains(v, "..")) {
			bad("%s: %q is not a full git ref name: give one such as refs/heads/deploy/HOST", key, v)
		}
	}
	for key, v := range map[string]string{"reboot.window.lower": c.Reboot.Window.Lower, "reboot.window.upper": c.Reboot.Window.Upper} {
		if _, err := time.Parse("15:04", v); v != "" && err != nil {
			bad("%s: %q: want HH:MM, such as \"01:30\"", key, v)
		}
	}
	if (c.Reboot.Window.Lower == "") != (c.Reboot.Window.Upper == "") {
		bad("reboot.window: give both lower and upper, or neither")
	}
	if c.FloorCommit != "" && !shaRE().MatchString(c.FloorCommit) {
		bad("floorCommit: %q is not a full commit id (40 or 64 hex digits)", c.FloorCommit)
	}
	switch c.Verify.Mode {
	case "none":
	case "ssh", "gpg":
		if c.Verify.AllowedSigners == "" {
			bad("verify.allowedSigners (--allowed-signers): required when verify.mode is %q", c.Verify.Mode)
		}
	default:
		bad(`verify.mode (--verify): %q: want "none", "ssh" or "gpg"`, c.Verify.Mode)
	}
	if (c.Auth.SSHKeyFile == "") != (c.Auth.SSHKnownHosts == "") {
		bad("auth.sshKeyFile and auth.sshKnownHosts (--ssh-key, --ssh-known-hosts): give both, so the server's host key is pinned")
	}
	if strings.ContainsAny(c.Auth.TokenUser, ":\n\r") {
		bad("auth.tokenUser: %q must not contain ':' or line breaks", c.Auth.TokenUser)
	}
	for key, d := range map[string]Duration{
		"timeouts.fetch": c.Timeouts.Fetch, "timeouts.eval": c.Timeouts.Eval, "timeouts.build": c.Timeouts.Build,
		"timeouts.switch": c.Timeouts.Switch, "timeouts.health": c.Timeouts.Health, "retry.initial": c.Retry.Initial,
		"retry.max": c.Retry.Max, "poll.interval": c.Poll.Interval, "health.settle": c.Health.Settle,
	} {
		if d < 0 {
			bad("%s: %s is negative: give a positive duration", key, d.D())
		}
	}
	if c.Poll.Jitter != nil && *c.Poll.Jitter < 0 {
		bad("poll.jitter: %s is negative: give 0s or more", c.Poll.Jitter.D())
	}
	if c.Retry.Attempts < 1 {
		bad("retry.attempts: %d: want 1 or more", c.Retry.Attempts)
	}
	switch c.Poll.Method {
	case "auto", "git":
	default:
		bad(`poll.method: %q: want "auto" or "git"`, c.Poll.Method)
	}
	for _, u := range c.Health.RequiredUnits {
		if u == "" || strings.ContainsAny(u, " /\n") {
			bad("health.requiredUnits: %q is not a unit name", u)
		}
	}
	for _, a := range c.Health.TCP {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("health.tcp: %q: want host:port", a)
		}
	}
	for _, s := range c.Health.HTTP {
		if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("health.http: %q: want an http:// or https:// URL", s)
		}
	}
	if c.Metrics.Listen != "" && c.Metrics.Listen != "off" {
		host, _, err := net.SplitHostPort(c.Metrics.Listen)
		if err != nil {
			bad("metrics.listen (--metrics-listen): %q: want host:port, or \"off\"", c.Metrics.Listen)
		} else if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			bad("metrics.listen (--metrics-listen): %q is not a loopback address: the agent serves metrics on localhost only; let node_exporter or a proxy publish them", c.Metrics.Listen)
		}
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad(`log.format: %q: want "text" or "json"`, c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad(`log.level: %q: want "debug", "info", "warn" or "error"`, c.Log.Level)
	}
	return errors.Join(errs...)
}

var shaRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`) })
