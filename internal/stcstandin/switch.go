package stcstandin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
)

// Systemd is what the switch asks of the running systemd (upstream: the
// org.freedesktop.systemd1 Manager over D-Bus).
type Systemd interface {
	// ActiveUnits lists the units get_active_units keeps (main.rs:286).
	ActiveUnits(ctx context.Context) (map[string]ActiveUnit, error)
	// Job queues a start, stop, restart or reload of unit in "replace" mode;
	// the channel gets the job's result when it is removed (done, failed,
	// dependency, timeout, canceled, skipped).
	Job(ctx context.Context, kind, unit string) (<-chan string, error)
	ResetFailed(ctx context.Context) error
	// Reload is daemon-reload, Reexecute daemon-reexec; both return when
	// systemd is done.
	Reload(ctx context.Context) error
	Reexecute(ctx context.Context) error
	IsActive(ctx context.Context, unit string) (bool, error)
	ExecMainStatus(ctx context.Context, unit string) (int, error)
	// Settle waits until systemd has no job queued (main.rs:2587-2599 waits
	// for bus messages to settle, at most 90 s).
	Settle(ctx context.Context)
}

// Env is what the wrapper switchable-system.nix makes around the program
// sets (main.rs:1757-1766), and where the switch keeps its state.
type Env struct {
	Out, Toplevel, DistroID, PreSwitchCheck, InstallBootloader, Systemd string
	NoCheck, NoSync                                                     bool
	// Root is "/" on a machine; tests move it.
	Root string
}

// EnvFromOS reads Env from the process environment; a missing variable is
// an error, as required_env (main.rs:274) makes it.
func EnvFromOS() (Env, error) {
	e := Env{Root: "/", NoCheck: os.Getenv("NIXOS_NO_CHECK") == "1", NoSync: os.Getenv("NIXOS_NO_SYNC") == "1"}
	for name, dst := range map[string]*string{"OUT": &e.Out, "TOPLEVEL": &e.Toplevel, "DISTRO_ID": &e.DistroID,
		"PRE_SWITCH_CHECK": &e.PreSwitchCheck, "INSTALL_BOOTLOADER": &e.InstallBootloader, "SYSTEMD": &e.Systemd} {
		v, ok := os.LookupEnv(name)
		if !ok {
			return e, fmt.Errorf("missing required environment variable $%s", name)
		}
		*dst = v
	}
	return e, nil
}

func (e Env) path(p string) string { return filepath.Join(e.Root, p) }

// Exit statuses (main.rs): 1 usage, a failed pre-switch check or boot
// loader; 2 a failed activation script; 4 a unit that failed to start,
// stop, restart or reload, or is failed after the switch; 100 an init
// interface the running system cannot switch to; errno (EWOULDBLOCK, 11)
// when another switch holds the lock.
const (
	exitActivate = 2
	exitUnits    = 4
	exitInit     = 100
)

// Switch runs action ("switch", "boot", "test", "check"), printing what it
// does to w, and returns the exit status (main.rs:1754-2680
// do_system_switch).
func Switch(ctx context.Context, action string, e Env, sd Systemd, w io.Writer) int {
	switch action {
	case "switch", "boot", "test", "check":
	case "dry-activate":
		fmt.Fprintln(w, "switch-to-configuration (stand-in): dry-activate is not implemented")
		return 1
	default:
		// main.rs:1740 usage.
		fmt.Fprintln(w, "Usage: switch-to-configuration [check|switch|boot|test|dry-activate]")
		return 1
	}
	// main.rs:1780: the action is exported to what runs from here on.
	os.Setenv("NIXOS_ACTION", action)

	// main.rs:1786-1796: /etc/NIXOS or an os-release of DISTRO_ID.
	if !isNixOS(e) {
		fmt.Fprintln(w, "This is not a NixOS installation!")
		return 1
	}

	// main.rs:1798-1817: one switch at a time, without waiting.
	runDir := e.path("run/nixos")
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		fmt.Fprintf(w, "Failed to create /run/nixos directory: %v\n", err)
		return 1
	}
	lock, err := os.OpenFile(filepath.Join(runDir, "switch-to-configuration.lock"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(w, "Could not open lock")
		return errnoOf(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fmt.Fprintln(w, "Could not acquire lock")
		return errnoOf(err)
	}

	// main.rs:1823-1830, :227 do_pre_switch_check.
	if !e.NoCheck {
		if err := runCmd(e.PreSwitchCheck, w, e.Toplevel, action); err != nil {
			fmt.Fprintln(w, "Pre-switch checks failed")
			return 1
		}
	}
	if action == "check" {
		return 0
	}
	// main.rs:1836-1839, :250 do_install_bootloader.
	if action == "switch" || action == "boot" {
		if err := runCmd(e.InstallBootloader, w, e.Toplevel); err != nil {
			fmt.Fprintln(w, "Failed to install bootloader")
			return 1
		}
	}
	// main.rs:1842-1850: sync the store before anything can hang.
	if !e.NoSync {
		syscall.Sync()
	}
	if action == "boot" {
		return 0
	}

	// main.rs:1857-1873.
	curInit, _ := os.ReadFile(e.path("run/current-system/init-interface-version"))
	newInit, err := os.ReadFile(filepath.Join(e.Toplevel, "init-interface-version"))
	if err != nil {
		fmt.Fprintf(w, "File init-interface-version should exist: %v\n", err)
		return 1
	}
	if string(curInit) != string(newInit) {
		fmt.Fprint(w, "Warning: the new NixOS configuration has an ‘init’ that is\nincompatible with the current configuration.  The new configuration\nwon't take effect until you reboot the system.\n\n")
		return exitInit
	}

	return activate(ctx, e, sd, w)
}

// activate is the part of do_system_switch that changes the running system
// (main.rs:1881-2680).
func activate(ctx context.Context, e Env, sd Systemd, w io.Writer) int {
	lists := Lists{Dir: e.path("run/nixos")}
	plan := NewPlan(lists)
	active, err := sd.ActiveUnits(ctx)
	if err != nil {
		fmt.Fprintf(w, "Failed to list systemd units: %v\n", err)
		return 1
	}
	if err := plan.Collect(e.Toplevel, e.path("etc/systemd/system"), filepath.Join(e.Toplevel, "etc/systemd/system"), active, lists); err != nil {
		fmt.Fprintln(w, err)
		return 1
	}

	// main.rs:2019-2034: re-execute systemd when its binary or system.conf
	// changed; the new systemd must exist.
	newPID1 := canonical(filepath.Join(e.Systemd, "lib/systemd/systemd"))
	if newPID1 == "/unknown" {
		fmt.Fprintf(w, "cannot find %s/lib/systemd/systemd\n", e.Systemd)
		return 1
	}
	restartSystemd := canonical(e.path("proc/1/exe")) != newPID1 ||
		canonical(e.path("etc/systemd/system.conf")) != canonical(filepath.Join(e.Toplevel, "etc/systemd/system.conf"))

	var results []jobResult
	// main.rs:2186-2204: stop, and wait.
	if len(plan.Stop) > 0 {
		if shown := without(plan.Stop, plan.Filter); len(shown) > 0 {
			fmt.Fprintf(w, "stopping the following units: %s\n", strings.Join(shown, ", "))
		}
		results = append(results, runJobs(ctx, sd, w, "stop", sorted(plan.Stop), nil)...)
	}
	// main.rs:2206-2216.
	if len(plan.Skip) > 0 {
		fmt.Fprintf(w, "NOT restarting the following changed units: %s\n", strings.Join(sorted(plan.Skip), ", "))
	}

	exit := 0
	// main.rs:2222-2238: the activation script (a missing one is fine).
	fmt.Fprintln(w, "activating the configuration...")
	if _, err := os.Stat(filepath.Join(e.Out, "activate")); err == nil {
		if err := runCmd(filepath.Join(e.Out, "activate"), w, e.Out); err != nil {
			fmt.Fprintln(w, "Failed to run activate script")
			exit = exitActivate
		}
	}

	// main.rs:2324-2345, then :2347-2368: forget failed units, reload units.
	if restartSystemd {
		fmt.Fprintln(w, "restarting systemd...")
		if err := sd.Reexecute(ctx); err != nil {
			fmt.Fprintf(w, "systemd daemon reexecute failed: %v\n", err)
			return 1
		}
	}
	if err := sd.ResetFailed(ctx); err != nil {
		fmt.Fprintf(w, "Failed to reset failed units: %v\n", err)
		return 1
	}
	if err := sd.Reload(ctx); err != nil {
		fmt.Fprintf(w, "systemd daemon reload failed: %v\n", err)
		return 1
	}

	// main.rs:2423-2442: restart sysinit-reactivation.target and wait.
	fmt.Fprintln(w, "restarting sysinit-reactivation.target")
	results = append(results, runJobs(ctx, sd, w, "restart", []string{"sysinit-reactivation.target"}, &exit)...)

	// main.rs:2447-2476: a unit to reload that is no longer active is
	// started instead (unless it refuses manual starts).
	for _, u := range sorted(plan.Reload) {
		if ok, err := sd.IsActive(ctx, u); err == nil && !ok {
			if info, err := ParseUnit(filepath.Join(e.Toplevel, "etc/systemd/system", u), filepath.Join(e.Toplevel, "etc/systemd/system", u)); err == nil &&
				(!info.Bool("Unit", "RefuseManualStart", false) || info.Bool("Unit", "X-OnlyManualStart", false)) {
				plan.Start[u] = true
				lists.record("start-list", u)
			}
			delete(plan.Reload, u)
			lists.unrecord("reload-list", u)
		}
	}
	// main.rs:2478-2502.
	if len(plan.Reload) > 0 {
		fmt.Fprintf(w, "reloading the following units: %s\n", strings.Join(sorted(plan.Reload), ", "))
		results = append(results, runJobs(ctx, sd, w, "reload", sorted(plan.Reload), &exit)...)
		lists.remove("reload-list")
	}
	// main.rs:2505-2530.
	if len(plan.Restart) > 0 {
		fmt.Fprintf(w, "restarting the following units: %s\n", strings.Join(sorted(plan.Restart), ", "))
		results = append(results, runJobs(ctx, sd, w, "restart", sorted(plan.Restart), &exit)...)
		lists.remove("restart-list")
	}
	// main.rs:2532-2560: start every active target (which starts what it
	// now wants) and the units stopped above, and wait for all those jobs.
	if shown := without(plan.Start, plan.Filter); len(shown) > 0 {
		fmt.Fprintf(w, "starting the following units: %s\n", strings.Join(shown, ", "))
	}
	results = append(results, runJobs(ctx, sd, w, "start", sorted(plan.Start), &exit)...)
	lists.remove("start-list")

	// main.rs:2563-2571: a job that failed, hit a dependency or timed out.
	for _, r := range results {
		switch r.result {
		case "timeout", "failed", "dependency":
			fmt.Fprintf(w, "Failed to %s %s\n", r.kind, r.unit)
			exit = exitUnits
		}
	}

	// main.rs:2587-2670: after things settle, failed units (and services
	// auto-restarting after a failure) make the switch fail; new units are
	// listed.
	sd.Settle(ctx)
	after, err := sd.ActiveUnits(ctx)
	if err != nil {
		fmt.Fprintf(w, "Failed to list systemd units: %v\n", err)
		return 1
	}
	var failed, started []string
	for u, st := range after {
		if st.State == "failed" {
			failed = append(failed, u)
			continue
		}
		if st.SubState == "auto-restart" && strings.HasSuffix(u, ".service") {
			if code, err := sd.ExecMainStatus(ctx, u); err == nil && code != 0 {
				failed = append(failed, u)
				continue
			}
		}
		if _, was := active[u]; !was && !strings.HasSuffix(u, ".scope") {
			started = append(started, u)
		}
	}
	if len(started) > 0 {
		fmt.Fprintf(w, "the following new units were started: %s\n", strings.Join(sortedList(started), ", "))
	}
	if len(failed) > 0 {
		failed = sortedList(failed)
		fmt.Fprintf(w, "warning: the following units failed: %s\n", strings.Join(failed, ", "))
		cmd := exec.Command(filepath.Join(e.Systemd, "bin/systemctl"), append([]string{"status", "--no-pager", "--full"}, failed...)...)
		cmd.Stdout, cmd.Stderr = w, w
		_ = cmd.Run()
		exit = exitUnits
	}
	return exit
}

type jobResult struct{ kind, unit, result string }

// runJobs queues one job per unit and waits for all of them (main.rs:1072
// block_on_jobs); a job systemd refuses to queue sets *exit to 4
// ("Failed to <kind> <unit>: ..."), as upstream does for all but stops.
func runJobs(ctx context.Context, sd Systemd, w io.Writer, kind string, units []string, exit *int) []jobResult {
	type pending struct {
		unit string
		ch   <-chan string
	}
	var jobs []pending
	for _, u := range units {
		ch, err := sd.Job(ctx, kind, u)
		if err != nil {
			if exit != nil {
				fmt.Fprintf(w, "Failed to %s %s: %v\n", kind, u, err)
				*exit = exitUnits
			}
			continue
		}
		jobs = append(jobs, pending{u, ch})
	}
	var out []jobResult
	for _, j := range jobs {
		select {
		case r := <-j.ch:
			out = append(out, jobResult{kind, j.unit, r})
		case <-ctx.Done():
			return out
		}
	}
	return out
}

// runCmd runs a command line (split on white space, as upstream's
// do_pre_switch_check and do_install_bootloader split theirs) with more
// arguments, its output to w.
func runCmd(command string, w io.Writer, args ...string) error {
	f := strings.Fields(command)
	if len(f) == 0 {
		return errors.New("missing first argument")
	}
	cmd := exec.Command(f[0], append(f[1:], args...)...)
	cmd.Stdout, cmd.Stderr = w, w
	return cmd.Run()
}

var idRE = regexp.MustCompile(`(?m)^ID=(.*)$`)

func isNixOS(e Env) bool {
	if st, err := os.Stat(e.path("etc/NIXOS")); err == nil && st.Mode().IsRegular() {
		return true
	}
	b, _ := os.ReadFile(e.path("etc/os-release"))
	m := idRE.FindSubmatch(b)
	return m != nil && strings.Trim(string(m[1]), `"`) == e.DistroID
}

// errnoOf is die()'s exit status: the errno, never 0 (main.rs:203-212).
func errnoOf(err error) int {
	var en syscall.Errno
	if errors.As(err, &en) && en != 0 {
		return int(en)
	}
	return 1
}

func canonical(p string) string {
	t, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "/unknown"
	}
	return t
}

// without lists set's units that filter does not hold, sorted as upstream
// prints them (by lower-cased name).
func without(set, filter map[string]bool) []string {
	var out []string
	for u := range set {
		if !filter[u] {
			out = append(out, u)
		}
	}
	return sortedList(out)
}

func sorted(set map[string]bool) []string {
	var out []string
	for u := range set {
		out = append(out, u)
	}
	return sortedList(out)
}

func sortedList(l []string) []string {
	sort.Slice(l, func(i, j int) bool { return strings.ToLower(l[i]) < strings.ToLower(l[j]) })
	return l
}
