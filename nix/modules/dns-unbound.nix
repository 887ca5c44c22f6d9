# dns-unbound.nix: a validating, caching recursive resolver for the lab
# (dns01). It answers on every interface of the machine, so the machine's
# address stays a fact of its claim only (D8) and no IP is repeated here.
{ config, lib, options, ... }:

let
  cfg = config.homelab.dns;
in
{
  options.homelab.dns = {
    enable = lib.mkEnableOption "the Unbound recursive resolver (the dns role)";

    allowedNetworks = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ "10.0.0.0/8" "172.16.0.0/12" "192.168.0.0/16" "fd00::/8" ];
      description = ''
        Client networks allowed to query (Unbound access-control "allow").
        The default is the private address ranges: a policy, not a host fact.
        Localhost is always allowed.
      '';
    };

    forwarders = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "9.9.9.9@853#dns.quad9.net" ];
      description = ''
        Upstream resolvers to forward all queries to (Unbound forward-addr
        syntax). Empty: recurse from the root servers.
      '';
    };

    forwardTLS = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Use DNS over TLS to the forwarders (they must use port 853 and a #name).";
    };

    localZones = lib.mkOption {
      type = lib.types.attrsOf (lib.types.listOf lib.types.str);
      default = { };
      example = { "lab.home.arpa." = [ "nas.lab.home.arpa. A 10.0.10.20" ]; };
      description = ''
        Static zones answered by this resolver: zone name to a list of
        local-data records. For names of things that are not Machines.
      '';
    };
  };

  config = lib.mkIf cfg.enable (lib.mkMerge [
    {
      services.unbound = {
        enable = true;
        # unbound serves 127.0.0.1 for this host too (/etc/resolv.conf).
        resolveLocalQueries = true;
        enableRootTrustAnchor = true;
        settings = {
          server = {
            interface = [ "0.0.0.0" "::0" ];
            access-control =
              [ "127.0.0.0/8 allow" "::1/128 allow" ]
              ++ map (net: "${net} allow") cfg.allowedNetworks;
            hide-identity = true;
            hide-version = true;
            qname-minimisation = true;
            prefetch = true;
            local-zone = lib.mapAttrsToList (zone: _: "\"${zone}\" static") cfg.localZones;
            local-data = lib.concatLists (lib.mapAttrsToList (_: records: map (r: "\"${r}\"") records) cfg.localZones);
          };
          forward-zone = lib.mkIf (cfg.forwarders != [ ]) [
            {
              name = ".";
              forward-addr = cfg.forwarders;
              forward-tls-upstream = cfg.forwardTLS;
            }
          ];
        };
      };

      # systemd-resolved's stub listener would sit on port 53 as well, and the
      # resolver for this host is unbound itself (resolveLocalQueries).
      services.resolved.enable = lib.mkForce false;

      networking.firewall.allowedTCPPorts = [ 53 ];
      networking.firewall.allowedUDPPorts = [ 53 ];
    }
    # The agent's health gate: a switch that breaks DNS is rolled back. Only
    # where the nix-gitops module is imported too, so this module also works
    # on its own (nixosModules.dns-unbound).
    (lib.optionalAttrs (options ? services.nix-gitops) {
      services.nix-gitops.healthChecks = {
        requiredUnits = [ "unbound.service" ];
        tcp = [ "127.0.0.1:53" ];
      };
    })
  ]);
}
