# nix-gitops-secrets.nix: secrets from Vault, pulled by the machine itself
# (design D7). Options live under services.nix-gitops.secrets and
# services.nix-gitops.vault, beside the agent's own (nix-gitops.nix).
#
# A secret is declared by reference only: a KV v2 path and field, or a PKI
# role and the names to put in a certificate. No option takes a value, so
# nothing secret can enter the Nix store: the declarations
# (/etc/nix-gitops/secrets.json, in the store like all of /etc) say where a
# value comes from and where it goes, and the agent fetches it at run time.
#
# Where the values go: tmpfs (/run/nix-gitops/secrets/<name> by default),
# written atomically with the declared owner, group and mode by
#   - the agent's secrets stage, before every switch (from the new system's
#     declarations) and on every tick of the timer or daemon;
#   - nix-gitops-secrets.service at boot, before the units that declared a
#     secret (tmpfs is empty after a reboot);
#   - and an activation snippet that gives the files to service users the
#     switch has just created, before the switch starts those services.
{ config, lib, ... }:

let
  inherit (lib) mkOption types;
  types' = import ../lib/types.nix lib;
  top = config.services.nix-gitops;
  cfg = top.secrets;
  vcfg = top.vault;
  exe = lib.getExe top.package;
  secretsDir = "/run/nix-gitops/secrets";
  inStore = p: p != null && lib.hasPrefix builtins.storeDir (toString p);

  kvType = types.submodule {
    options = {
      path = mkOption {
        type = types.strMatching "[^/]+/.+";
        example = "secret/hosts/dns01/tsig";
        description = "The KV v2 secret: its mount, then its path in the mount.";
      };
      field = mkOption {
        type = types.str;
        example = "key";
        description = "The field of the secret whose value is written to the file.";
      };
    };
  };

  pkiType = types.submodule {
    options = {
      mount = mkOption {
        type = types.str;
        default = "pki";
        description = "Where the PKI secrets engine is mounted.";
      };
      role = mkOption {
        type = types.strMatching "[^/]+";
        example = "dns01";
        description = "The PKI role to issue from (pki/issue/<role>); its policy decides which names it may sign.";
      };
      commonName = mkOption {
        type = types.str;
        example = "dns01.lab.home.arpa";
        description = "The certificate's common name.";
      };
      altNames = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "More DNS names for the certificate.";
      };
      ipSans = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "IP addresses for the certificate.";
      };
      ttl = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "720h";
        description = ''
          Lifetime asked for (a Go duration), capped by the role. The agent
          renews the certificate two thirds into its life. null: the role's
          default.
        '';
      };
    };
  };

  secretType = types.submodule ({ name, config, ... }: {
    options = {
      kv = mkOption {
        type = types.nullOr kvType;
        default = null;
        description = "Take the secret from a field of a KV v2 secret.";
      };
      pki = mkOption {
        type = types.nullOr pkiType;
        default = null;
        description = "Issue a certificate and key from a PKI role (written to `path` and `keyPath`).";
      };
      path = mkOption {
        type = types.str;
        default = "${secretsDir}/${name}" + lib.optionalString (config.pki != null) ".crt";
        description = ''
          The file on tmpfs (for pki: the certificate chain). The agent
          refuses a path on a filesystem that keeps data on disk.
        '';
      };
      keyPath = mkOption {
        type = types.nullOr types.str;
        default = if config.pki != null then "${secretsDir}/${name}.key" else null;
        defaultText = lib.literalExpression ''"${secretsDir}/<name>.key" for pki, else null'';
        description = "A pki secret's private key, on tmpfs.";
      };
      owner = mkOption {
        type = types.str;
        default = "root";
        description = "User that owns the file(s).";
      };
      group = mkOption {
        type = types.str;
        default = "root";
        description = "Group of the file(s).";
      };
      mode = mkOption {
        type = types.strMatching "0?[0-7][0-7][0-7]";
        default = "0400";
        description = "Permission bits (octal). Other users may get none.";
      };
      restartUnits = mkOption {
        type = types.listOf types'.unitName;
        default = [ ];
        example = [ "unbound.service" ];
        description = ''
          Units restarted (once, after every secret is written) when this
          secret's value changes: a rotation in Vault, a renewed certificate.
          They are also ordered after nix-gitops-secrets.service at boot.
        '';
      };
    };
  });

  toJSON = name: s: lib.filterAttrs (_: v: v != null && v != [ ]) {
    kv = if s.kv == null then null else { inherit (s.kv) path field; };
    pki = if s.pki == null then null else lib.filterAttrs (_: v: v != null && v != [ ]) {
      inherit (s.pki) mount role commonName altNames ipSans ttl;
    };
    inherit (s) path keyPath owner group mode restartUnits;
  };

  declarations = {
    vault = lib.filterAttrs (_: v: v != null) {
      inherit (vcfg) address roleId authMount;
      caFile = if vcfg.caFile == null then null else toString vcfg.caFile;
    };
    secrets = lib.mapAttrs toJSON cfg;
  };

  units = lib.unique (lib.concatLists (lib.mapAttrsToList (_: s: s.restartUnits) cfg));
  serviceName = u: lib.removeSuffix ".service" u;
  services = map serviceName (lib.filter (lib.hasSuffix ".service") units);
in
{
  options.services.nix-gitops = {
    vault = {
      address = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "https://vault.lab.home.arpa:8200";
        description = "Vault's (or OpenBao's) URL.";
      };
      caFile = mkOption {
        type = types.nullOr (types.either types.path types.str);
        default = null;
        description = "PEM bundle of the CA that signed Vault's certificate (public: it may be in the store). null: the system's roots.";
      };
      roleId = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "5d3e8c2a-…";
        description = ''
          The role_id of this machine's AppRole role (`vault read
          auth/approle/role/<role>/role-id`). Not secret: it names the role;
          the secret_id reaches the machine only once, response-wrapped,
          through its claim's spec.secrets.
        '';
      };
      authMount = mkOption {
        type = types.str;
        default = "approle";
        description = "Where the AppRole auth method is mounted.";
      };
    };

    secrets = mkOption {
      type = types.attrsOf secretType;
      default = { };
      example = lib.literalExpression ''
        {
          tsig = { kv = { path = "secret/hosts/dns01/tsig"; field = "key"; }; owner = "knot"; restartUnits = [ "knot.service" ]; };
          dns-tls = { pki = { role = "dns01"; commonName = "dns01.lab.home.arpa"; ttl = "720h"; }; owner = "unbound"; restartUnits = [ "unbound.service" ]; };
        }
      '';
      description = ''
        Secrets this machine pulls from Vault, by reference. A secret is in
        place (file present, owner and mode as declared, certificate valid)
        before a switch is allowed and as part of the health gate.
      '';
    };
  };

  config = lib.mkIf (top.enable && cfg != { }) {
    assertions = [
      {
        assertion = vcfg.address != null && vcfg.roleId != null;
        message = "services.nix-gitops.secrets is set: set services.nix-gitops.vault.address and services.nix-gitops.vault.roleId too.";
      }
    ] ++ lib.concatLists (lib.mapAttrsToList (name: s: [
      {
        assertion = (s.kv == null) != (s.pki == null);
        message = "services.nix-gitops.secrets.${name}: set exactly one of kv and pki.";
      }
      {
        assertion = !(inStore s.path) && !(inStore s.keyPath);
        message = "services.nix-gitops.secrets.${name}: path and keyPath must be outside the Nix store (secrets never go into the store); use a path under ${secretsDir}.";
      }
      {
        assertion = builtins.match ".*[1-7]" s.mode == null;
        message = "services.nix-gitops.secrets.${name}.mode: ${s.mode} gives other users access to a secret; give them none.";
      }
    ]) cfg);

    environment.etc."nix-gitops/secrets.json".text = builtins.toJSON declarations;

    systemd.services = lib.mkMerge [
      {
        # At boot tmpfs is empty: fetch before the units that need the
        # secrets. Wants, not Requires: a Vault outage must not keep down a
        # service that can start without its secret; the secrets then show
        # as not in place in the agent's status until Vault answers.
        nix-gitops-secrets = {
          description = "nix-gitops: fetch this machine's secrets from Vault";
          wantedBy = [ "multi-user.target" ];
          wants = [ "network-online.target" ];
          after = [ "network-online.target" ];
          before = units;
          restartIfChanged = false;
          path = [ config.systemd.package ];
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
            # Never wait for the agent's lock: a run of the agent holds it
            # while it switches, the switch starts multi-user.target and
            # waits for it, and multi-user.target waits for this unit (a
            # switch that adds it, or one after it failed at boot). Waiting
            # here would deadlock the switch; the run writes the secrets
            # itself before every switch, so "another run holds the lock"
            # (75) is success.
            ExecStart = "${exe} secrets --no-wait";
            SuccessExitStatus = "75";
            UMask = "0077";
          };
        };
        # The boot-time apply converges only after the secrets are there.
        nix-gitops-apply.after = [ "nix-gitops-secrets.service" ];
      }
      # So does the daemon: it takes the lock at once, and the boot-time
      # fetch would then leave the secrets to the daemon's first tick.
      (lib.mkIf top.daemon.enable {
        nix-gitops.after = [ "nix-gitops-secrets.service" ];
      })
      (lib.genAttrs services (_: {
        wants = [ "nix-gitops-secrets.service" ];
        after = [ "nix-gitops-secrets.service" ];
      }))
    ];

    # During a switch: users created by this activation get their files
    # before the switch starts their services. No Vault, no lock: the agent
    # that runs the switch has written the files already. A failure here
    # must not fail the activation: the agent gives the files away again
    # after the switch and its health gate reports any that stay wrong.
    system.activationScripts.nix-gitops-secrets = {
      deps = [ "users" ];
      text = ''
        ${exe} secrets --fix-owners --declarations "$systemConfig/etc/nix-gitops/secrets.json" || true
      '';
    };
  };
}
