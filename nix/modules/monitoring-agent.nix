# monitoring-agent.nix: Prometheus node_exporter on every machine, with the
# textfile collector reading the metrics nix-gitops writes after each run
# (last applied commit, result, duration). That file is the read-only status
# channel of design D6: Prometheus scrapes it, nothing logs in over SSH.
{ config, lib, options, ... }:

let
  cfg = config.homelab.monitoring;
in
{
  options.homelab.monitoring = {
    enable = lib.mkOption {
      type = lib.types.bool;
      # Off unless asked: importing the module (or nixosModules.default)
      # changes nothing; the lab's machines turn it on (flake.nix mkMachine).
      default = false;
      description = "Run the Prometheus node exporter.";
    };

    port = lib.mkOption {
      type = lib.types.port;
      default = 9100;
      description = "node_exporter's listen port (all addresses).";
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Open the port so the lab's Prometheus can scrape it.";
    };

    textfileDirectory = lib.mkOption {
      type = lib.types.str;
      default = "/var/lib/prometheus-node-exporter/textfile";
      description = ''
        Directory of the textfile collector. nix-gitops writes its
        nix-gitops.prom here (atomically: temp file, then rename, so a
        scrape never reads half a file).
      '';
    };

    extraCollectors = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ "systemd" ];
      description = "Collectors to enable on top of node_exporter's defaults.";
    };
  };

  config = lib.mkIf cfg.enable (lib.mkMerge [
    {
      services.prometheus.exporters.node = {
        enable = true;
        port = cfg.port;
        openFirewall = cfg.openFirewall;
        enabledCollectors = [ "textfile" ] ++ cfg.extraCollectors;
        extraFlags = [ "--collector.textfile.directory=${cfg.textfileDirectory}" ];
      };

      # World-readable directory (the exporter runs unprivileged); only root
      # (the agent) writes to it.
      systemd.tmpfiles.rules = [ "d ${cfg.textfileDirectory} 0755 root root -" ];
    }
    # Where the agent's module is imported too: its metrics go to the textfile
    # collector, and a switch that stops the exporter is rolled back.
    (lib.optionalAttrs (options ? services.nix-gitops) {
      services.nix-gitops.healthChecks.requiredUnits = [ "prometheus-node-exporter.service" ];
      services.nix-gitops.metricsTextfile = lib.mkDefault "${cfg.textfileDirectory}/nix-gitops.prom";
    })
  ]);
}
