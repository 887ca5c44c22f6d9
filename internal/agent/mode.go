// mode.go: "switch" or "boot" for a built system, whether a reboot is
// required, and the reboot policy.

package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/activation"
	"github.com/homelab-infra/homelab-infra/internal/agent/run"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// mode decides how toplevel is activated, and why. "boot" (make it the boot
// default, run it after a reboot) when switching to it now is refused or
// unsafe, as comin decides:
//   - a switch inhibitor changed (system.switch.inhibitors, NixOS 26.05):
//     switch-to-configuration's pre-switch check would refuse `switch`;
//   - its init interface differs: switch-to-configuration would refuse
//     (exit 100);
//   - its kernel, initrd, modules, kernel parameters or firmware differ
//     from the booted system's and onKernelChange is "boot".
//
// None of these is a fault of the commit: it is applied, pending its reboot.
func (a *Agent) mode(running, toplevel string) (string, string) {
	if running != "" {
		changed, err := activation.InhibitorsChanged(running, toplevel)
		if err != nil {
			a.Log.Warn("cannot compare the switch inhibitors; booting into the new system instead of switching", "err", err)
			return "boot", "switch inhibitors unreadable: " + err.Error()
		}
		if len(changed) > 0 {
			return "boot", "switch inhibitors changed: " + strings.Join(changed, "; ")
		}
		if activation.InitInterfaceChanged(running, toplevel) {
			return "boot", "init interface version changed"
		}
	}
	if a.Cfg.OnKernelChange == "boot" {
		diff, err := activation.BootDiff(a.Cfg.BootedSystem, toplevel)
		if err != nil {
			a.Log.Warn("cannot tell whether the kernel changed; assuming it did", "err", err)
			return "boot", "kernel comparison failed: " + err.Error()
		}
		if len(diff) > 0 {
			return "boot", "changed since boot: " + strings.Join(diff, ", ")
		}
	}
	return "switch", ""
}

// rebootRequired recomputes, from the applied generation and the booted
// system, whether a reboot is required and why: after the reboot into the
// applied generation it clears by itself.
func (a *Agent) rebootRequired(st *state.State) {
	st.RebootRequired, st.RebootReasons = false, nil
	if st.Applied == nil {
		return
	}
	if st.PendingBoot != nil {
		st.RebootRequired = true
		st.RebootReasons = []string{"generation " + fmt.Sprint(st.PendingBoot.Generation.Number) + " waits for its boot (" + st.PendingBoot.Reason + ")"}
		return
	}
	diff, err := activation.BootDiff(a.Cfg.BootedSystem, st.Applied.StorePath)
	if err != nil {
		a.Log.Warn("cannot compare the applied generation with the booted system", "err", err)
		return
	}
	st.RebootRequired, st.RebootReasons = len(diff) > 0, diff
}

// maybeReboot reboots into a boot-mode generation (of commit) when
// reboot.allow says so, as system.autoUpgrade's allowReboot does (shutdown
// -r +1: a minute's notice on the consoles): "window" within reboot.window,
// "approved" once reboot/<host> names commit or a descendant of it. It
// reports whether it scheduled one.
func (a *Agent) maybeReboot(ctx context.Context, st *state.State, commit, why string) bool {
	cmd := a.Cfg.Reboot.Command
	if len(cmd) == 0 {
		if !a.Switch.Transient {
			a.Log.Warn("a reboot is required; systemd does not run this machine, so nix-gitops only reports it", "why", why)
			return false
		}
		cmd = []string{"shutdown", "-r", "+1", "nix-gitops: " + why}
	}
	switch a.Cfg.Reboot.Allow {
	case "window":
		if !a.Cfg.Reboot.InWindow(a.Now()) {
			a.Log.Warn("a reboot is required, outside the reboot window; the next run inside it reboots", "why", why,
				"window", a.Cfg.Reboot.Window.Lower+"-"+a.Cfg.Reboot.Window.Upper)
			return false
		}
	case "approved":
		ok, err := a.rebootApproved(ctx, st, commit)
		if err != nil {
			a.Log.Error("cannot read the reboot approval; not rebooting", "err", err)
			return false
		}
		if !ok {
			a.Log.Warn("a reboot is required; it waits for its approval (the reboot ref naming this commit)", "why", why, "commit", short(commit))
			return false
		}
	default:
		a.Log.Warn("a reboot is required; reboot.allow is \"never\", so nix-gitops only reports it", "why", why)
		return false
	}
	a.Log.Warn("rebooting into the new boot default", "why", why, "commit", short(commit))
	if _, err := run.Output(ctx, run.Cmd{Name: cmd[0], Args: cmd[1:], Env: run.Environ("LC_ALL=C"), Timeout: time.Minute}); err != nil {
		a.Log.Error("cannot schedule the reboot", "err", err)
		return false
	}
	if st.Rollout != nil {
		st.Rollout.RebootScheduled = commit
	}
	return true
}
