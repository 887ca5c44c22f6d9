# docker-host.nix: a Docker engine for container workloads (docker01).
{ config, lib, options, ... }:

let
  cfg = config.homelab.docker;
  types' = import ../lib/types.nix lib;
in
{
  options.homelab.docker = {
    enable = lib.mkEnableOption "the Docker engine (the docker-host role)";

    storageDriver = lib.mkOption {
      type = lib.types.enum [ "overlay2" "btrfs" "zfs" ];
      default = "overlay2";
      description = ''
        Docker's storage driver, pinned because Docker's own default changes
        between versions and a change makes existing images and containers
        inaccessible. The template's root file system is ext4: overlay2.
      '';
    };

    pruneSchedule = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = "weekly";
      description = ''
        When to run `docker system prune` (a systemd calendar expression),
        or null for never. Named volumes are never pruned.
      '';
    };

    logMaxSize = lib.mkOption {
      type = lib.types.str;
      default = "50m";
      description = "Rotation size of each container's local log file.";
    };

    users = lib.mkOption {
      type = lib.types.listOf types'.userName;
      default = [ ];
      example = [ "ops" ];
      description = ''
        Accounts added to the docker group. Membership is root-equivalent,
        so it is opt-in; the admin account can always use sudo.
      '';
    };
  };

  config = lib.mkIf cfg.enable (lib.mkMerge [
    {
      virtualisation.docker = {
        enable = true;
        enableOnBoot = true;
        storageDriver = cfg.storageDriver;
        logDriver = "local";
        daemon.settings = {
          # Containers keep running while dockerd restarts (a switch may
          # restart it), so a rollout does not bounce the workloads.
          live-restore = true;
          log-opts = {
            max-size = cfg.logMaxSize;
            max-file = "3";
          };
        };
        autoPrune = {
          enable = cfg.pruneSchedule != null;
          dates = if cfg.pruneSchedule == null then "weekly" else cfg.pruneSchedule;
          randomizedDelaySec = "1h";
        };
      };

      users.groups.docker.members = cfg.users;
    }
    # A switch that leaves dockerd down is rolled back (when the agent's
    # module is imported too).
    (lib.optionalAttrs (options ? services.nix-gitops) {
      services.nix-gitops.healthChecks.requiredUnits = [ "docker.service" ];
    })
  ]);
}
