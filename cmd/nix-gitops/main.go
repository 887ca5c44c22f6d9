// Command nix-gitops is the on-VM agent: it makes the machine converge
// itself to its NixOS configuration in Git, safely. See usage below, or
// `nix-gitops --help`; the logic lives in internal/agent.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/homelab-infra/homelab-infra/internal/agent"
	"github.com/homelab-infra/homelab-infra/internal/agent/config"
	"github.com/homelab-infra/homelab-infra/internal/agent/gitsource"
	"github.com/homelab-infra/homelab-infra/internal/agent/secrets"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
	"github.com/homelab-infra/homelab-infra/internal/agent/units"
)

const usage = `nix-gitops: make this NixOS machine converge itself from Git, safely.

Usage:
  nix-gitops apply [--first-boot [--condition]] [--retry-bad] [--no-wait] [flags]
      Converge once and exit: poll the tracked ref; if it moved, fetch it,
      refuse non-fast-forward or badly signed commits, build
      nixosConfigurations.<host>.config.system.build.toplevel from that exact
      commit, set the system profile, switch-to-configuration, run the health
      gate, and roll back to the previous generation on failure.
        --first-boot  as started by nix-gitops-apply.service at boot: after the
                      first success it does nothing, unless started by the timer
                      ($TRIGGER_UNIT) or the config says everyBoot
        --condition   the unit's ExecCondition=: exit 1 (systemd skips this
                      start) once a boot-time run has finished in this boot,
                      unless the timer started it; a switch starts
                      multi-user.target again, which must not run the agent
        --retry-bad   try the head even if it is remembered as a bad commit
        --no-wait     exit 75 at once if another run holds the lock (default: wait)
      Exit codes: 0 applied (or applied for the next boot), 10 up to date,
      20 failed and rolled back, 21 failed before switching (eval or build
      error, refused, known-bad head), 22 rollback failed, 23 failed for a
      cause outside the commit (network, timeout, killed build; retried, and
      with --first-boot every failure until the first success), 24 rolled
      back but a unit failed, 75 busy, 78 bad agent configuration.
  nix-gitops run [flags]
      The daemon: apply every poll.interval plus jitter; metrics over HTTP on
      localhost (metrics.listen). A tick never waits for a manual run's lock.
  nix-gitops status [--json] [flags]
      Show the applied commit and generation, the last run, bad commits.
  nix-gitops rollback [--no-wait] [flags]
      Re-activate the good generation recorded before the applied one, and
      remember the commit rolled back from as bad until a new commit arrives.
      Exit codes: 0 rolled back, 22 rollback failed, 1 nothing to roll back to.
  nix-gitops secrets [flags]
      Fetch the applied system's secrets from Vault and put them in place on
      tmpfs (nix-gitops-secrets.service runs it at boot), restarting the
      units of those whose value changed. Git is not looked at.
  nix-gitops secrets --fix-owners --declarations PATH
      Give every declared secret's files to their owner, group and mode
      (NixOS activation runs it after creating users). No Vault, no lock.
  nix-gitops units --bin PATH --dir DIR [--config PATH] [--flake-file PATH] [--flake-in-config]
      Write the systemd units (nix-gitops-apply.service, nix-gitops-apply.timer,
      nix-gitops.service): the one definition the NixOS module and images use.
      They start once the flake target file exists, or with --flake-in-config
      (the config file names the flake) once the config file does.
  nix-gitops version

The flake ref comes from --flake, else the config key "flake", else the first
line of /etc/nix-flake-target (written by cloud-init). Forms:
  git+https://host/repo?ref=main#host   git+ssh://git@host/repo?ref=main&dir=nix#host
  git+file:///srv/repo?ref=main#host    (no #host: the machine's hostname)

`

// version is set by the linker (-X main.version=…) in packaged builds.
var version = "dev"

func main() {
	if gitsource.IsAskPass() {
		// Started by git as GIT_ASKPASS: answer with the token file.
		if err := gitsource.AskPass(os.Args[1], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "nix-gitops askpass:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// Main runs the command line args and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage+config.FlagUsage+"\nConfig file keys (JSON):\n"+configKeys())
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, "nix-gitops", version)
		return 0
	case "units":
		return unitsCmd(rest, stdout, stderr)
	case "secrets":
		if len(rest) > 0 && rest[0] == "--fix-owners" {
			return fixOwnersCmd(rest[1:], stderr)
		}
	case "apply", "run", "status", "rollback":
	default:
		fmt.Fprintf(stderr, "nix-gitops: unknown command %q: want apply, run, status, rollback, units or version (see --help)\n", cmd)
		return 2
	}

	fs := flag.NewFlagSet("nix-gitops "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage+config.FlagUsage) }
	configPath, applyFlags := config.Flags(fs)
	firstBoot := fs.Bool("first-boot", false, "boot-time start (apply)")
	retryBad := fs.Bool("retry-bad", false, "retry a bad head (apply)")
	noWait := fs.Bool("no-wait", false, "do not wait for the lock")
	asJSON := fs.Bool("json", false, "JSON output (status)")
	condition := fs.Bool("condition", false, "ExecCondition= of the boot-time unit (apply --first-boot)")
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return units.ExitBadConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "nix-gitops %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return units.ExitBadConfig
	}
	if *condition && (cmd != "apply" || !*firstBoot) {
		fmt.Fprintln(stderr, "nix-gitops: --condition goes with apply --first-boot (the boot-time unit's ExecCondition=)")
		return units.ExitBadConfig
	}
	if *condition {
		return bootCondition(*configPath, !config.WasSet(fs, "config"), applyFlags, stderr)
	}
	cfg, err := config.Load(*configPath, !config.WasSet(fs, "config"))
	if err != nil {
		fmt.Fprintln(stderr, "nix-gitops:", err)
		return units.ExitBadConfig
	}
	applyFlags(&cfg)
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "nix-gitops: bad configuration (%s and flags):\n  %s\n", *configPath, strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return units.ExitBadConfig
	}
	if cmd == "status" {
		s, err := agent.ReadStatus(cfg)
		if err != nil {
			fmt.Fprintln(stderr, "nix-gitops:", err)
			return 1
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(s)
		} else {
			agent.WriteStatus(stdout, s)
		}
		return 0
	}
	log := newLogger(stderr, cfg.Log)
	a, err := agent.New(cfg, log)
	if err != nil {
		log.Error("bad configuration", "err", err)
		return units.ExitBadConfig
	}
	a.FirstBoot, a.RetryBad = *firstBoot, *retryBad
	a.ConfigFile = *configPath

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lockCtx := context.Background()
	if *noWait {
		c, cancel := context.WithCancel(context.Background())
		cancel()
		lockCtx = c
	}

	if cmd == "run" {
		stop := make(chan struct{})
		sig := make(chan os.Signal, 2)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		go func() {
			<-sig
			log.Info("stopping: a build is abandoned, a switch in progress finishes (signal again to abort it)")
			close(stop)
			<-sig
			cancel()
		}()
		if err := a.Run(stop, ctx); err != nil {
			log.Error("daemon failed", "err", err)
			return 1
		}
		return 0
	}

	// The first SIGTERM abandons a build but lets a switch, its gate or a
	// rollback finish (the unit's KillMode=mixed and TimeoutStopSec give
	// it time); a second one cancels everything.
	stopping := make(chan struct{})
	a.Stopping = stopping
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		log.Info("stopping: a build is abandoned, a switch in progress finishes (signal again to abort it)")
		close(stopping)
		<-sig
		cancel()
	}()
	var res agent.Result
	if cmd == "secrets" {
		if err := a.RefreshSecrets(ctx, lockCtx); err != nil {
			log.Error("secrets failed", "err", err)
			if errors.Is(err, state.ErrBusy) {
				return units.ExitBusy
			}
			return 1
		}
		return 0
	}
	if cmd == "rollback" {
		res, err = a.Rollback(ctx, lockCtx)
	} else {
		res, err = a.Apply(ctx, lockCtx)
	}
	if cmd == "rollback" && err == nil && res.Outcome == agent.OutcomeRolledBack {
		return 0 // the rollback asked for is done
	}
	if errors.Is(err, state.ErrBusy) {
		log.Error("busy", "err", err)
		return markBootRun(a, *firstBoot, units.ExitBusy)
	}
	if err != nil {
		log.Error(cmd+" failed", "err", err)
		return 1
	}
	code := agent.ExitCode(res)
	if *firstBoot && !a.FirstBootDone() && (code == units.ExitRolledBack || code == units.ExitFailedBeforeSwitch) {
		// Until the first boot has converged once, every failure is retried
		// (the unit's Restart=on-failure): a fixed commit may arrive any
		// time, and this machine has nothing else to run.
		code = units.ExitRetry
	}
	return markBootRun(a, *firstBoot, code)
}

// markBootRun records a boot-time run that ended as a success for systemd
// (the unit's SuccessExitStatus), so that later starts in this boot are
// skipped (bootCondition); a failure is retried and runs again.
func markBootRun(a *agent.Agent, firstBoot bool, code int) int {
	if !firstBoot || !units.IsSuccess(code) {
		return code
	}
	if err := agent.MarkBootRun(a.Cfg.StateDir); err != nil {
		a.Log.Error("cannot record the boot-time run; a switch may start it again", "err", err)
	}
	return code
}

// bootCondition is `apply --first-boot --condition`, the ExecCondition= of
// nix-gitops-apply.service (see internal/agent/bootrun.go): 1 (skip) once a
// boot-time run has finished in this boot and the timer did not make this
// start, else 0. A configuration it cannot read lets the start run, which
// then reports it.
func bootCondition(path string, optional bool, applyFlags func(*config.Config), stderr io.Writer) int {
	cfg, err := config.Load(path, optional)
	if err != nil {
		return 0
	}
	applyFlags(&cfg)
	cfg.Defaults()
	if os.Getenv("TRIGGER_UNIT") != "" || !agent.BootRunDone(cfg.StateDir) {
		return 0
	}
	fmt.Fprintln(stderr, "nix-gitops: the boot-time run has finished in this boot; this start (a switch starting multi-user.target) is skipped. The timer and `nix-gitops apply` still run.")
	return 1
}

func unitsCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nix-gitops units", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "", "absolute path of the nix-gitops binary in ExecStart")
	dir := fs.String("dir", "", "folder to write the units into")
	cfgFile := fs.String("config", config.DefaultConfigFile, "config file the units pass on and wait for")
	target := fs.String("flake-file", config.DefaultTargetFile, "flake target file the units wait for")
	inConfig := fs.Bool("flake-in-config", false, "the config file names the flake: start whenever it exists")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *bin == "" || *dir == "" {
		fmt.Fprintln(stderr, "nix-gitops units: --bin and --dir are required")
		return 2
	}
	names, err := units.Write(*dir, units.Options{Bin: *bin, ConfigFile: *cfgFile, TargetFile: *target, FlakeInConfig: *inConfig})
	if err != nil {
		fmt.Fprintln(stderr, "nix-gitops units:", err)
		return 1
	}
	for _, n := range names {
		fmt.Fprintln(stdout, n)
	}
	return 0
}

// fixOwnersCmd is `secrets --fix-owners --declarations PATH`.
func fixOwnersCmd(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("nix-gitops secrets --fix-owners", flag.ContinueOnError)
	fs.SetOutput(stderr)
	decl := fs.String("declarations", "", "the secrets declarations (a system's etc/nix-gitops/secrets.json)")
	if err := fs.Parse(args); err != nil || *decl == "" {
		fmt.Fprintln(stderr, "nix-gitops secrets --fix-owners: --declarations PATH is required")
		return 2
	}
	f, ok, err := secrets.Load(*decl)
	if err == nil && ok {
		err = secrets.FixOwners(f)
	}
	if err != nil {
		fmt.Fprintln(stderr, "nix-gitops secrets --fix-owners:", err)
		return 1
	}
	return 0
}

// newLogger logs to stderr, journald-friendly: under systemd (JOURNAL_STREAM
// set) the journal stamps each line, so the time attribute is dropped.
func newLogger(w io.Writer, c config.Log) *slog.Logger {
	level := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[c.Level]
	opts := &slog.HandlerOptions{Level: level}
	if os.Getenv("JOURNAL_STREAM") != "" {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// configKeys is the key list from the config package's doc comment.
func configKeys() string { return config.KeysUsage }
