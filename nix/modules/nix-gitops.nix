# nix-gitops.nix: the agent that makes a machine converge to its flake
# (design §1, D5, D9). Options live under services.nix-gitops.
#
# The units are NOT written here: nix-gitops emits its own canonical
# nix-gitops-apply.service and nix-gitops-apply.timer (`nix-gitops units`),
# the same files the Debian stand-in image installs, and this module ships
# them with systemd.packages. NixOS ignores [Install] of packaged units, so
# enabling happens here (wantedBy), together with the NixOS-only bits as a
# drop-in:
#   - restartIfChanged/stopIfChanged = false (the agent's own units carry
#     them in [Service] too, where switch-to-configuration reads them);
#   - path: the agent runs git, nix, ssh, systemctl (gpg when verifying
#     with it), and the proxy settings;
#   - the daemon (daemon.enable) and the timer's schedule.
# The service's own hardening stays in the agent's unit; it only uses
# settings that leave switch-to-configuration working (the switch writes
# /nix, /boot, /etc, /run and talks to systemd as root).
{ config, lib, pkgs, ... }:

let
  cfg = config.services.nix-gitops;
  exe = lib.getExe cfg.package;
  # The units start once there is a flake to follow: the target file
  # cloud-init writes, or the config file when it names the flake (this
  # module always writes the config file, so its presence alone says
  # nothing: a clone without user-data would fail its start and be
  # degraded).
  units = pkgs.runCommand "nix-gitops-units" { } (''
    ${exe} units --bin ${exe} --dir $out/lib/systemd/system --flake-file ${cfg.flakeTargetFile}${lib.optionalString (settings ? flake) " --flake-in-config"}
  '' + lib.optionalString (!cfg.daemon.enable) ''
    # Off, the daemon is not in the system: after the run that switched to
    # it, the daemon finds its unit gone and stops itself (the switch leaves
    # it running, X-StopOnRemoval=false: a switch never stops the run that
    # switches). With its file kept, it would run on until the next boot.
    rm $out/lib/systemd/system/nix-gitops.service
  '' + lib.optionalString (!cfg.timer.enable) ''
    # Off, the timer is not in the system: the switch that turns it off
    # stops it (switch-to-configuration stops an active unit the new system
    # lacks unless it says X-StopOnRemoval=false, which the timer does not);
    # with its file kept, the changed timer would be restarted instead.
    rm $out/lib/systemd/system/nix-gitops-apply.timer
  '');
  settings = import ../lib/agent-config.nix cfg;
  isStorePath = p: p != null && lib.hasPrefix builtins.storeDir (toString p);
  # sshd must answer after a switch, when it runs as a service; socket
  # activation (startWhenNeeded) starts it per connection, and a machine
  # without sshd has nothing to check.
  sshdIsService = (config.services.openssh.enable or false) && !(config.services.openssh.startWhenNeeded or false);

  # What both the one-shot unit and the daemon get from NixOS, as drop-ins
  # over the agent's own units (systemd.packages).
  agentService = {
    overrideStrategy = "asDropin";
    restartIfChanged = false;
    stopIfChanged = false;
    unitConfig.X-StopOnRemoval = false;
    # git for the agent and for nix's fetches, ssh for git+ssh remotes and
    # inputs, systemctl and systemd-run for the switch and the gate, gpg
    # for signatures when verifyMode is gpg.
    path = [ config.nix.package pkgs.git pkgs.openssh config.systemd.package ]
      ++ lib.optional (cfg.allowedSigners != null && cfg.verifyMode == "gpg") pkgs.gnupg;
    # Proxy settings (networking.proxy) reach the agent's git and the nix
    # it runs, as they reach nix-daemon; private inputs are fetched with
    # the agent's own credentials (it passes its git environment to nix).
    environment = config.networking.proxy.envVars or { };
    # Hardening that leaves switch-to-configuration and root's builds
    # working. Left out on purpose: ProtectSystem/ProtectHome (the switch
    # writes /etc, /boot, creates home folders), RestrictSUIDSGID (it installs
    # the setuid wrappers), RestrictNamespaces (root's nix builds in its own
    # sandbox), ProtectHostname (activation sets the host name), ProtectClock
    # and DeviceAllow (the boot loader writes the disk), NoNewPrivileges
    # (health scripts may use wrappers), and LockPersonality and
    # SystemCallArchitectures=native: without a nix-daemon, root's builds run
    # in this unit, and builds for i686 (or with a personality) need them.
    serviceConfig = {
      RestrictRealtime = true;
      KeyringMode = "private";
      UMask = "0022";
      # Builds must not starve the services the machine exists for.
      Nice = 10;
      IOSchedulingClass = "best-effort";
      IOSchedulingPriority = 7;
      # A stop lets a switch in progress finish (the agent abandons a build
      # at once): SIGTERM to the agent alone, then time.
      KillMode = "mixed";
      TimeoutStopSec = cfg.stopTimeout;
    };
  };
in
{
  options.services.nix-gitops = {
    enable = lib.mkEnableOption "nix-gitops, the agent that applies this machine's flake from Git";

    package = lib.mkOption {
      type = lib.types.package;
      description = "The nix-gitops package (the flake sets it to its own build).";
    };

    flake = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "git+https://git.lab.home.arpa/homelab-infra?ref=main#dns01";
      description = ''
        Flake ref to follow. null: read it from `flakeTargetFile`, which
        cloud-init writes from the claim's `spec.nix.flakeRef`; keeping it
        null keeps the claim the one place that names it.
      '';
    };

    flakeTargetFile = lib.mkOption {
      type = lib.types.str;
      default = "/etc/nix-flake-target";
      description = "File holding the flake ref, one line (written by cloud-init at first boot).";
    };

    stateDir = lib.mkOption {
      type = lib.types.str;
      default = "/var/lib/nix-gitops";
      description = "The agent's state: state.json, its clone of the repo, the lock.";
    };

    everyBoot = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Apply at every boot. false (the seed's one-shot): the boot-time
        apply runs until it has succeeded once and then stays off, checked
        by the agent against its state, since unit files on NixOS are
        read-only and cannot be `systemctl disable`d.
      '';
    };

    timer = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = false;
        description = ''
          Re-apply on a schedule (drift control). Off by default, as the
          seed asks: start with manual runs and reboots until you trust it.
        '';
      };

      interval = lib.mkOption {
        type = lib.types.str;
        default = "1d";
        example = "6h";
        description = ''
          Time between runs, counted from the last run (OnUnitActiveSec=,
          a systemd time span). The agent's timer also fires a few minutes
          after boot, so a machine catches up after downtime.
        '';
      };

      randomizedDelay = lib.mkOption {
        type = lib.types.str;
        default = "5min";
        description = "Random delay added to each run (RandomizedDelaySec=), so machines booted together do not all fetch at once.";
      };
    };

    daemon.enable = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Run `nix-gitops run` (nix-gitops.service): poll every
        `poll.interval` (extraSettings) and apply at once, instead of the
        timer's schedule. After a switch that changed its own unit or
        config, the daemon restarts itself to run them.
      '';
    };

    stopTimeout = lib.mkOption {
      type = lib.types.str;
      default = "15min";
      description = "How long a stop of the agent's units may take (TimeoutStopSec=): a switch in progress finishes first.";
    };

    onDrift = lib.mkOption {
      type = lib.types.enum [ "reapply" "report" ];
      default = "reapply";
      description = ''
        What the timer and the daemon do when the running system or the
        system profile is not the applied generation (a manual switch or
        rollback): apply the applied commit again, or only report it.
      '';
    };

    reboot = {
      allow = lib.mkOption {
        type = lib.types.enum [ "never" "window" "approved" ];
        default = "never";
        description = ''
          Whether the agent reboots into a generation that takes effect only
          at boot (a kernel, initrd, init or switch-inhibitor change), as
          system.autoUpgrade.allowReboot: "never" reports that a reboot is
          required (status, metric); "window" reboots, within `window`;
          "approved" (rollout mode) reboots once the ref reboot/<host>
          names the commit or a descendant of it.
        '';
      };

      window = lib.mkOption {
        type = lib.types.nullOr (lib.types.submodule {
          options = {
            lower = lib.mkOption { type = lib.types.strMatching "[[:digit:]]{2}:[[:digit:]]{2}"; example = "01:00"; description = "Start of the window (HH:MM)."; };
            upper = lib.mkOption { type = lib.types.strMatching "[[:digit:]]{2}:[[:digit:]]{2}"; example = "05:00"; description = "End of the window (HH:MM)."; };
          };
        });
        default = null;
        description = "Time of day within which a reboot is allowed; null: any time.";
      };
    };

    rollout.enable = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Rollout mode (design D13): follow the ref deploy/<host>, which the
        rollout driver (`labctl rollout`, the Argo WorkflowTemplate in
        workflows/) fast-forwards to commits on the flake ref's branch,
        instead of the branch itself; report the verdict on that commit as
        nix_gitops_target_info. Before the ref exists a new machine follows
        the branch once; after that a missing ref is reported.
      '';
    };

    floorCommit = lib.mkOption {
      type = lib.types.nullOr (lib.types.strMatching "[0-9a-f]{40}");
      default = null;
      description = ''
        Never apply a commit that does not descend from this one. The
        template sets it to the commit it was built from, so a first boot
        (no state yet) refuses anything older; afterwards the agent keeps
        its own floor, the last applied commit, in floor.json.
      '';
    };

    verifyAllCommits = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "With `allowedSigners`, verify every commit since the applied one, not only the new head.";
    };

    onKernelChange = lib.mkOption {
      type = lib.types.enum [ "switch" "boot" ];
      default = "switch";
      description = ''
        What to do when a new generation changes the kernel or initrd:
        "switch" now anyway, or "boot" (make it the boot default and
        report that a reboot is pending).
      '';
    };

    healthChecks = {
      systemRunning = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = "After a switch, `systemctl is-system-running` must not report degraded.";
      };

      requiredUnits = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        description = ''
          Units that must be active after a switch, or the agent rolls back.
          sshd.service is added whenever sshd runs as a service (not socket
          activated): a switch that loses SSH must never stay.
        '';
      };

      tcp = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        example = [ "127.0.0.1:53" ];
        description = "host:port endpoints that must accept a connection.";
      };

      http = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        example = [ "http://127.0.0.1:9100/metrics" ];
        description = "URLs that must answer 2xx.";
      };

      script = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        description = "Absolute path of a program that must exit 0.";
      };

      gitReachable = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = "The Git remote must still answer after the switch (the machine can still converge).";
      };

      settle = lib.mkOption {
        type = lib.types.str;
        default = "1m";
        description = "How long units may stay activating before the checks count them as failed.";
      };
    };

    verifyMode = lib.mkOption {
      type = lib.types.enum [ "ssh" "gpg" ];
      default = "ssh";
      description = "How commit signatures are checked when `allowedSigners` is set.";
    };

    allowedSigners = lib.mkOption {
      type = lib.types.nullOr (lib.types.either lib.types.path lib.types.str);
      default = null;
      description = ''
        Require every applied commit to be signed by one of these keys:
        git's allowed-signers file (ssh) or armoured public keys (gpg).
        Public keys only, so a file in the Nix store is fine. null: no
        signature check.
      '';
    };

    deployKeyFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/run/keys/nix-gitops-deploy-key";
      description = ''
        SSH private key for a git+ssh remote. A path on the machine as a
        string, never a Nix path: the key must not be copied to the
        world-readable store. Needs `sshKnownHosts`.
      '';
    };

    sshKnownHosts = lib.mkOption {
      type = lib.types.nullOr (lib.types.either lib.types.path lib.types.str);
      default = null;
      description = "known_hosts pinning the Git server's host key (public, may be in the store).";
    };

    tokenFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/run/keys/nix-gitops-token";
      description = ''
        File holding an HTTPS token for the Git remote, read at use and
        never logged. A string path outside the Nix store, like deployKeyFile.
      '';
    };

    tokenUser = lib.mkOption {
      type = lib.types.str;
      default = "git";
      description = "User name sent with the HTTPS token.";
    };

    timeouts = lib.mkOption {
      type = lib.types.attrsOf lib.types.str;
      default = { };
      example = { build = "2h"; };
      description = "Per-stage time limits (fetch, eval, build, switch, health) as Go durations.";
    };

    metricsTextfile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      description = ''
        node_exporter textfile the agent writes after each run. The
        monitoring module points it into the exporter's textfile directory.
      '';
    };

    extraSettings = lib.mkOption {
      type = lib.types.attrsOf lib.types.anything;
      default = { };
      example = { timeouts.build = "2h"; poll.method = "git"; };
      description = ''
        More keys for /etc/nix-gitops/config.json, merged over the ones the
        options above write (see `nix-gitops --help`; unknown keys make the
        agent refuse to start, naming the key).
      '';
    };

    logFormat = lib.mkOption {
      type = lib.types.enum [ "text" "json" ];
      default = "text";
      description = "Log format on the journal.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = !(isStorePath cfg.deployKeyFile) && !(isStorePath cfg.tokenFile);
        message = "services.nix-gitops: deployKeyFile and tokenFile must be paths outside the Nix store (secrets never go into the store); give them as strings such as \"/run/keys/...\".";
      }
      {
        assertion = (cfg.deployKeyFile == null) == (cfg.sshKnownHosts == null);
        message = "services.nix-gitops: set deployKeyFile and sshKnownHosts together, so the Git server's host key is pinned.";
      }
      {
        assertion = cfg.reboot.allow != "approved" || cfg.rollout.enable;
        message = "services.nix-gitops: reboot.allow = \"approved\" waits for the ref reboot/<host>, which only rollout mode reads: set rollout.enable, or choose \"never\" or \"window\".";
      }
      {
        assertion = !(cfg.daemon.enable && cfg.timer.enable);
        message = "services.nix-gitops: daemon.enable and timer.enable both re-apply from Git; choose one (the daemon polls, the timer runs on a schedule).";
      }
    ];

    services.nix-gitops.healthChecks.requiredUnits = lib.mkIf sshdIsService [ "sshd.service" ];

    environment.etc."nix-gitops/config.json".text = builtins.toJSON settings;
    environment.systemPackages = [ cfg.package ];

    systemd.packages = [ units ];
    systemd.services.nix-gitops-apply = agentService // {
      wantedBy = [ "multi-user.target" ];
    };
    systemd.services.nix-gitops = lib.mkIf cfg.daemon.enable (agentService // {
      wantedBy = [ "multi-user.target" ];
    });
    systemd.timers.nix-gitops-apply = lib.mkIf cfg.timer.enable {
      wantedBy = [ "timers.target" ];
      overrideStrategy = "asDropin";
      timerConfig = {
        # "" clears the agent's own interval before setting ours.
        OnUnitActiveSec = [ "" cfg.timer.interval ];
        RandomizedDelaySec = cfg.timer.randomizedDelay;
      };
    };
  };
}
