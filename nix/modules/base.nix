# base.nix: what every machine of the lab shares. The admin account and how
# it reaches the machine, SSH hardening, journald limits, Nix settings, the
# time zone and a baseline of kernel hardening.
#
# Access must survive the agent's first switch from the template to a host
# config (issue 4, item 4). cloud-init creates the claim's admin user with
# useradd and writes its keys to ~/.ssh/authorized_keys and its sudo rule to
# /etc/sudoers.d. So:
#   - users.mutableUsers stays true: with false, activation rewrites
#     /etc/passwd from the Nix config alone and drops the cloud-init user;
#   - sshd keeps reading ~/.ssh/authorized_keys (authorizedKeysInHomedir);
#   - sudo includes /etc/sudoers.d, which NixOS' generated sudoers does not;
#   - the default admin name ("ops", the claims' default) is also declared
#     here, in wheel, so it works even before cloud-init has run.
{ config, lib, ... }:

let
  cfg = config.homelab;
  types' = import ../lib/types.nix lib;
  journaldDropIn = ''
    [Journal]
    Storage=persistent
    SystemMaxUse=${cfg.journal.systemMaxUse}
    MaxRetentionSec=${cfg.journal.maxRetention}
  '';
in
{
  options.homelab = {
    role = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "dns";
      description = ''
        The machine's role, as in its claim's `spec.role`. Informational: it
        is written to /etc/homelab-role for operators and metrics.
      '';
    };

    admin = {
      name = lib.mkOption {
        type = types'.userName;
        default = "ops";
        description = ''
          The admin account, as in the claim's `spec.bootstrap.adminUser`.
          cloud-init creates it on first boot with the claim's keys; it is
          declared here too so that it keeps wheel membership and sudo
          across switches.
        '';
      };

      sshAuthorizedKeys = lib.mkOption {
        type = lib.types.listOf lib.types.singleLineStr;
        default = [ ];
        description = ''
          Extra SSH public keys for the admin account, on top of the keys
          cloud-init wrote from the claim to ~/.ssh/authorized_keys. Public
          keys only: they end up in the world-readable Nix store.
        '';
      };
    };

    timeZone = lib.mkOption {
      type = types'.timeZone;
      default = "UTC";
      example = "Europe/Berlin";
      description = "The machine's time zone (tz database name).";
    };

    journal = {
      systemMaxUse = lib.mkOption {
        type = lib.types.str;
        default = "512M";
        description = "journald SystemMaxUse: how much disk the persistent journal may use.";
      };

      maxRetention = lib.mkOption {
        type = lib.types.str;
        default = "1month";
        description = "journald MaxRetentionSec: entries older than this are removed.";
      };
    };

    nix = {
      gcOlderThan = lib.mkOption {
        # nix-collect-garbage --delete-older-than takes a number of days.
        type = lib.types.strMatching "[0-9]+d";
        default = "14d";
        description = ''
          The weekly garbage collection deletes generations older than this
          many days ("14d"). Keep it longer than the time you may want to
          roll back over.
        '';
      };

      trustedUsers = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ "root" "@wheel" ];
        description = "Users allowed to give the Nix daemon extra settings and unsigned paths.";
      };
    };
  };

  config = {
    users.mutableUsers = true;
    users.users.${cfg.admin.name} = {
      isNormalUser = true;
      description = "homelab-infra admin";
      extraGroups = [ "wheel" ];
      openssh.authorizedKeys.keys = cfg.admin.sshAuthorizedKeys;
    };

    security.sudo = {
      enable = true;
      # The admin password is locked (keys only), so sudo cannot ask for one.
      wheelNeedsPassword = false;
      # cloud-init writes the claim's sudo rule to /etc/sudoers.d.
      extraConfig = ''
        @includedir /etc/sudoers.d
      '';
    };

    # sudo would refuse to start on a missing @includedir.
    systemd.tmpfiles.rules = [ "d /etc/sudoers.d 0750 root root -" ];

    services.openssh = {
      enable = true;
      openFirewall = true;
      # Explicit, not left to the default: the keys cloud-init wrote from the
      # claim live there, and losing them after the first switch locks us out.
      authorizedKeysInHomedir = true;
      settings = {
        PasswordAuthentication = false;
        KbdInteractiveAuthentication = false;
        PermitRootLogin = "no";
        X11Forwarding = false;
      };
    };

    # journald limits as a drop-in: the journald option names changed between
    # releases (extraConfig became settings), a drop-in reads the same on all.
    environment.etc."systemd/journald.conf.d/50-homelab.conf".text = journaldDropIn;
    # NixOS restarts journald when journald.conf changes (its restartTriggers
    # in nixos/modules/system/boot/systemd/journald.nix), not when a drop-in
    # does: name ours too, so a switch that changes the limits restarts
    # journald (X-Restart-Triggers changes its unit) instead of leaving the
    # old limits until the next boot.
    systemd.services.systemd-journald.restartTriggers = [ journaldDropIn ];

    environment.etc."homelab-role" = lib.mkIf (cfg.role != null) {
      text = cfg.role + "\n";
    };

    nix = {
      settings = {
        experimental-features = [ "nix-command" "flakes" ];
        trusted-users = cfg.nix.trustedUsers;
        auto-optimise-store = true;
      };
      gc = {
        automatic = true;
        dates = "weekly";
        options = "--delete-older-than ${cfg.nix.gcOlderThan}";
      };
      # Machines follow their flake, not a channel.
      channel.enable = false;
    };

    time.timeZone = cfg.timeZone;
    services.timesyncd.enable = true;

    networking.firewall.enable = true;

    boot.tmp.cleanOnBoot = true;
    boot.kernel.sysctl = {
      "kernel.kptr_restrict" = 2;
      "kernel.dmesg_restrict" = 1;
      "kernel.unprivileged_bpf_disabled" = 1;
      "net.core.bpf_jit_harden" = 2;
      "net.ipv4.conf.all.accept_redirects" = 0;
      "net.ipv4.conf.default.accept_redirects" = 0;
      "net.ipv4.conf.all.send_redirects" = 0;
      "net.ipv6.conf.all.accept_redirects" = 0;
      "net.ipv6.conf.default.accept_redirects" = 0;
    };
    security.protectKernelImage = true;
  };
}
