# dns-unbound.nix: a validating, caching recursive resolver for the lab
# (dns01). It answers on every interface of the machine, so the machine's
# address stays a fact of its claim only (D8) and no IP is repeated here.
#
# The lab's own zone (the claims' spec.domain, lab.home.arpa) is not in the
# public DNS: the site's DNS server (the router) answers it. Unbound would
# recurse from the root for it, and answer home.arpa. itself as one of its
# built-in local zones (RFC 8375: NXDOMAIN), so once dns01 resolves for
# itself (resolveLocalQueries) it could no longer reach git.lab.home.arpa,
# and its agent's health gate (git reachable) would roll every commit back.
# So the site zone is forwarded to the site's DNS servers, the built-in
# home.arpa. zone is turned off, and the zone is not DNSSEC-validated (it is
# not signed; home.arpa. is delegated insecurely from the root).
#
# The site's servers are the claim's network.dns, as cloud-init rendered them
# for systemd-networkd (DNS= lines of /etc/systemd/network/*.network):
# unbound-site-zone.service writes the forward-zone from them at every boot,
# before unbound starts, so no address is written in Nix (D8).
{ config, lib, options, ... }:

let
  cfg = config.homelab.dns;
  zone = lib.removeSuffix "." cfg.siteDomain + ".";
  # On tmpfs, written by the agent (nix-gitops-secrets.nix).
  tlsCert = "/run/nix-gitops/secrets/dns-tls.crt";
  tlsKey = "/run/nix-gitops/secrets/dns-tls.key";
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
        Upstream resolvers to forward all other queries to (Unbound
        forward-addr syntax). Empty: recurse from the root servers.
      '';
    };

    forwardTLS = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Use DNS over TLS to the forwarders (they must use port 853 and a #name).";
    };

    siteDomain = lib.mkOption {
      type = lib.types.str;
      default = "lab.home.arpa";
      description = ''
        The lab's DNS zone, as in the claims' spec.domain (git.lab.home.arpa
        is in it). Queries for it go to the site's DNS servers.
      '';
    };

    siteServers = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "10.0.10.1" ];
      description = ''
        The site's DNS servers for siteDomain. Empty (the default): the
        claim's network.dns, which cloud-init hands to systemd-networkd, read
        at every boot (unbound-site-zone.service), so no address is repeated
        in Nix.
      '';
    };

    networkConfigDir = lib.mkOption {
      type = lib.types.str;
      default = "/etc/systemd/network";
      internal = true;
      description = "Where cloud-init writes systemd-networkd's .network files.";
    };

    siteForwardFile = lib.mkOption {
      type = lib.types.str;
      default = "/run/unbound-site/forward-zone.conf";
      internal = true;
      description = "The forward-zone unbound-site-zone.service writes and unbound includes.";
    };

    tls = {
      enable = lib.mkEnableOption ''
        DNS over TLS (port 853) for clients, with a certificate and key that
        the machine gets from Vault's PKI itself (the secret dns-tls of
        services.nix-gitops.secrets: renewed before it expires, unbound
        restarted when it is)'';

      commonName = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "dns01.lab.home.arpa";
        description = "The name clients verify: the machine's FQDN (its claim's hostname and domain).";
      };

      altNames = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        description = "More DNS names for the certificate.";
      };

      pkiRole = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "dns01";
        description = "The Vault PKI role that may issue commonName (pki/issue/<role>).";
      };

      pkiMount = lib.mkOption {
        type = lib.types.str;
        default = "pki";
        description = "Where the PKI secrets engine is mounted.";
      };

      ttl = lib.mkOption {
        type = lib.types.str;
        default = "720h";
        description = "The certificate's lifetime; it is renewed two thirds into it.";
      };
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
            # home.arpa. is one of unbound's built-in local zones: without
            # this it answers the site zone itself, with NXDOMAIN.
            local-zone = [ "\"home.arpa.\" nodefault" ]
              ++ lib.mapAttrsToList (z: _: "\"${z}\" static") cfg.localZones;
            local-data = lib.concatLists (lib.mapAttrsToList (_: records: map (r: "\"${r}\"") records) cfg.localZones);
            # The site zone is not signed, and home.arpa. is an insecure
            # delegation: do not expect signatures below it.
            domain-insecure = [ "\"${zone}\"" ];
            # The site's answers are private addresses, by design.
            private-domain = [ "\"${zone}\"" ];
          };
        } // lib.optionalAttrs (cfg.siteServers == [ ]) {
          # The forward-zone for the site, written at boot from the claim's
          # DNS servers (unbound-site-zone.service). At the top level, after
          # the server clause: an include inside it would end that clause
          # where the included forward-zone begins.
          include = "\"${cfg.siteForwardFile}\"";
        } // {
          forward-zone =
            lib.optional (cfg.siteServers != [ ]) { name = "\"${zone}\""; forward-addr = cfg.siteServers; }
            ++ lib.optional (cfg.forwarders != [ ]) {
              name = ".";
              forward-addr = cfg.forwarders;
              forward-tls-upstream = cfg.forwardTLS;
            };
        };
      };

      systemd.services.unbound-site-zone = lib.mkIf (cfg.siteServers == [ ]) {
        description = "Forward the site's DNS zone to the claim's DNS servers (from cloud-init)";
        wantedBy = [ "unbound.service" ];
        before = [ "unbound.service" ];
        # cloud-init-local renders the network config before the network.
        after = [ "cloud-init-local.service" ];
        serviceConfig.Type = "oneshot";
        # Every DNS= server of the .network files, but this machine's own
        # addresses (Address=) and loopback: dns01 may list itself.
        script = ''
          set -eu
          out=${lib.escapeShellArg cfg.siteForwardFile}
          dir=${lib.escapeShellArg cfg.networkConfigDir}
          mkdir -p "$(dirname "$out")"
          own=$(sed -n 's/^Address=\([^/]*\).*/\1/p' "$dir"/*.network 2>/dev/null | sort -u)
          servers=$(sed -n 's/^DNS=//p' "$dir"/*.network 2>/dev/null | tr ' ' '\n' | sed '/^$/d' | sort -u)
          for s in $servers; do
            case " $(echo $own) " in *" $s "*) continue ;; esac
            case "$s" in 127.*|::1) continue ;; esac
            echo "  forward-addr: $s"
          done >"$out.addrs"
          {
            echo "# Written by unbound-site-zone.service from the claim's DNS servers (cloud-init's network config)."
            if [ -s "$out.addrs" ]; then
              echo "forward-zone:"
              echo "  name: \"${zone}\""
              cat "$out.addrs"
            else
              echo "# No DNS server in $dir: ${zone} is not resolvable."
            fi
          } >"$out.tmp"
          rm -f "$out.addrs"
          mv "$out.tmp" "$out"
        '';
      };

      # systemd-resolved's stub listener would sit on port 53 as well, and the
      # resolver for this host is unbound itself (resolveLocalQueries).
      services.resolved.enable = lib.mkForce false;

      networking.firewall.allowedTCPPorts = [ 53 ];
      networking.firewall.allowedUDPPorts = [ 53 ];
    }
    (lib.mkIf cfg.tls.enable {
      assertions = [
        {
          assertion = cfg.tls.commonName != null && cfg.tls.pkiRole != null;
          message = "homelab.dns.tls: set commonName (the machine's FQDN) and pkiRole (the Vault PKI role that issues it).";
        }
        {
          assertion = options ? services.nix-gitops.secrets;
          message = "homelab.dns.tls needs the nix-gitops module (nixosModules.nix-gitops): the certificate comes from Vault through it.";
        }
      ];
      services.unbound.settings.server = {
        interface = [ "0.0.0.0@853" "::0@853" ];
        tls-port = 853;
        tls-service-pem = tlsCert;
        tls-service-key = tlsKey;
      };
      networking.firewall.allowedTCPPorts = [ 853 ];
    })
    # The certificate and key: declared by reference, fetched by the agent,
    # owned by unbound's user, renewed with a restart of unbound only.
    (lib.optionalAttrs (options ? services.nix-gitops.secrets) {
      # Only once both names are given: the assertion above explains a gap
      # better than a type error on the secret would.
      services.nix-gitops.secrets = lib.mkIf (cfg.tls.enable && cfg.tls.commonName != null && cfg.tls.pkiRole != null) {
        dns-tls = {
          pki = {
            role = cfg.tls.pkiRole;
            mount = cfg.tls.pkiMount;
            commonName = cfg.tls.commonName;
            altNames = cfg.tls.altNames;
            ttl = cfg.tls.ttl;
          };
          path = tlsCert;
          keyPath = tlsKey;
          owner = config.services.unbound.user;
          group = config.services.unbound.group;
          mode = "0440";
          restartUnits = [ "unbound.service" ];
        };
      };
      services.nix-gitops.healthChecks.tcp = lib.mkIf cfg.tls.enable [ "127.0.0.1:853" ];
    })
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
