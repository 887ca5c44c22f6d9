// switch.go: step 3 of `nixos-rebuild switch`, run the way nixos-rebuild-ng
// runs it: TOPLEVEL/bin/switch-to-configuration ACTION in a transient
// systemd unit of its own.

package activation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/run"
)

// SwitchUnit is the transient unit the switch runs in: the name
// nixos-rebuild-ng gives it (nixos_rebuild/nix.py,
// SWITCH_TO_CONFIGURATION_CMD_PREFIX), so a switch by the agent and one by
// hand never run at once: systemd refuses a second unit of that name while
// the first is loaded, and switch-to-configuration itself takes
// /run/nixos/switch-to-configuration.lock.
const SwitchUnit = "nixos-rebuild-switch-to-configuration.service"

// Exit statuses of switch-to-configuration-ng (src/main.rs,
// do_system_switch) that mean something other than "failed".
const (
	// exitUnitsFailed: the system was activated, but a unit failed to
	// start, restart or reload, or is failed afterwards.
	exitUnitsFailed = 4
	// exitInitInterface: the new init is incompatible with the running
	// one; the system takes effect only at boot (the boot loader is
	// already updated when `switch` says this).
	exitInitInterface = 100
	// exitLocked: another switch holds the lock (errno EWOULDBLOCK).
	exitLocked = 11
)

// SwitchError is a switch-to-configuration run that did not succeed.
type SwitchError struct {
	Action, Toplevel string
	// Code is the program's exit status, -1 when it did not exit.
	Code int
	// Output is the end of what it printed (the journal's, in a unit).
	Output string
	Err    error
}

func (e *SwitchError) Error() string {
	s := fmt.Sprintf("cannot %s to %s: %v", e.Action, e.Toplevel, e.Err)
	if e.Output != "" {
		s += ": " + e.Output
	}
	return s
}

func (e *SwitchError) Unwrap() error { return e.Err }

// Degraded reports that the system was activated but units failed (exit 4).
func (e *SwitchError) Degraded() bool { return e.Code == exitUnitsFailed }

// NeedsBoot reports that the system can only be booted into (exit 100).
func (e *SwitchError) NeedsBoot() bool { return e.Code == exitInitInterface }

// Busy reports that another switch was running: nothing was done.
func (e *SwitchError) Busy() bool { return e.Code == exitLocked || errors.Is(e.Err, errUnitBusy) }

var errUnitBusy = errors.New("another switch is running (" + SwitchUnit + ")")

// Switcher runs switch-to-configuration.
type Switcher struct {
	// Transient runs it in SwitchUnit (needs systemd as PID 1); otherwise
	// it is a child of the agent.
	Transient bool
	Log       *slog.Logger
}

// Switch runs toplevel/bin/switch-to-configuration action, within timeout.
//
// In a transient unit (Transient), the switch does not belong to the
// agent's cgroup: stopping or restarting the agent's unit, which a switch
// may do itself, never kills it half way. Its output goes to the journal
// (journalctl -u nixos-rebuild-switch-to-configuration), not through a pipe
// to the agent: switch-to-configuration-ng ignores SIGPIPE and writes its
// progress with eprintln!, which panics on a broken pipe, so a switch whose
// reader died would abort in the middle. A switch already running (a run
// killed before, or nixos-rebuild by hand) is waited for first. When
// timeout passes, the unit is stopped, so the caller can roll back; when
// ctx is cancelled (the agent is being stopped), the switch is left to
// finish and the next run picks up from the recorded attempt.
func (s Switcher) Switch(ctx context.Context, toplevel, action string, timeout time.Duration) error {
	bin := filepath.Join(toplevel, "bin", "switch-to-configuration")
	env := []string{"NIXOS_INSTALL_BOOTLOADER=0"}
	if !s.Transient {
		_, err := run.Output(ctx, run.Cmd{Name: bin, Args: []string{action}, Env: run.Environ(env...), Timeout: timeout})
		return classify(action, toplevel, err, "")
	}
	deadline := time.Now().Add(timeout)
	if err := WaitIdle(ctx, timeout); err != nil {
		return &SwitchError{Action: action, Toplevel: toplevel, Code: -1, Err: err}
	}
	args := []string{"--unit=" + SwitchUnit, "--service-type=exec", "--collect", "--wait", "--no-ask-password",
		"--description=nix-gitops: switch-to-configuration " + action + " " + toplevel}
	if v, ok := os.LookupEnv("LOCALE_ARCHIVE"); ok {
		env = append(env, "LOCALE_ARCHIVE="+v)
	}
	for _, kv := range env {
		args = append(args, "--setenv="+kv)
	}
	args = append(args, "--", bin, action)
	_, err := run.Output(ctx, run.Cmd{Name: "systemd-run", Args: args, Env: run.Environ("LC_ALL=C", "SYSTEMD_PAGER="), Timeout: time.Until(deadline)})
	if err == nil {
		return nil
	}
	var re *run.Error
	stderr := ""
	if errors.As(err, &re) {
		stderr = re.Stderr
	}
	if strings.Contains(stderr, "already loaded") || strings.Contains(stderr, "already exists") {
		return &SwitchError{Action: action, Toplevel: toplevel, Code: -1, Err: errUnitBusy}
	}
	tail := journalTail(invocation(stderr))
	if re != nil && re.TimedOut {
		s.Log.Error("the switch timed out; stopping it", "unit", SwitchUnit, "timeout", timeout)
		stop(context.WithoutCancel(ctx))
	}
	return classify(action, toplevel, err, tail)
}

func classify(action, toplevel string, err error, output string) error {
	if err == nil {
		return nil
	}
	e := &SwitchError{Action: action, Toplevel: toplevel, Code: -1, Err: err, Output: output}
	var re *run.Error
	if errors.As(err, &re) {
		e.Code = re.ExitCode()
		if e.Output == "" {
			e.Output = re.Stderr
		}
		// The run.Error's own text already carries the stderr tail.
		e.Err = errors.New(strings.TrimSuffix(re.Cmd+": "+errText(re), ": "))
	}
	return e
}

func errText(re *run.Error) string {
	if re.TimedOut {
		return "timed out"
	}
	return re.Err.Error()
}

// WaitIdle waits until no SwitchUnit is loaded and active, for at most
// limit.
func WaitIdle(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		st, err := unitState(ctx)
		if err != nil {
			return err
		}
		if st != "active" && st != "activating" && st != "deactivating" && st != "reloading" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w for longer than %s", errUnitBusy, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func unitState(ctx context.Context) (string, error) {
	out, err := run.Output(ctx, run.Cmd{Name: "systemctl", Args: []string{"show", "--property=ActiveState", "--value", SwitchUnit},
		Env: run.Environ("LC_ALL=C", "SYSTEMD_PAGER="), Timeout: 30 * time.Second})
	if err != nil {
		return "", fmt.Errorf("cannot ask systemd about %s: %w", SwitchUnit, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func stop(ctx context.Context) {
	_, _ = run.Output(ctx, run.Cmd{Name: "systemctl", Args: []string{"stop", SwitchUnit}, Env: run.Environ("LC_ALL=C"), Timeout: 2 * time.Minute})
}

var invocationRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`invocation ID: ([0-9a-f]{32})`) })

// invocation finds the invocation id systemd-run printed ("Running as unit:
// X; invocation ID: Y").
func invocation(stderr string) string {
	if m := invocationRE().FindStringSubmatch(stderr); m != nil {
		return m[1]
	}
	return ""
}

// journalTail is the end of what one run of the switch unit logged.
func journalTail(id string) string {
	if id == "" {
		return ""
	}
	out, err := run.Output(context.Background(), run.Cmd{Name: "journalctl", Args: []string{"_SYSTEMD_INVOCATION_ID=" + id, "--output=cat", "--lines=15", "--no-pager"},
		Env: run.Environ("LC_ALL=C", "SYSTEMD_PAGER="), Timeout: 30 * time.Second})
	if err != nil {
		return ""
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(string(out), "\n", " ⏎ ")), " ") + " (journalctl -u " + SwitchUnit + ")"
}
