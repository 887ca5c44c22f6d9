# Evaluates nix/modules/nix-gitops-secrets.nix and dns-unbound.nix with the
# real nixpkgs `lib` (lib.evalModules: real types, option merging, mkIf,
# submodules) and hands back what the tests look at. Every other NixOS
# option those modules touch is declared here by a permissive stand-in
# (type anything, or the default NixOS gives it), named as such: nixpkgs'
# NixOS modules cannot be fetched here.
#
# Arguments: lib (nixpkgs' lib), modules (extra modules: the host's settings).
{ lib, modules }:

let
  inherit (lib) mkOption types;
  anything = mkOption { type = types.anything; default = { }; };
  # The stand-ins.
  nixos = {
    options = {
      assertions = mkOption { type = types.listOf types.anything; default = [ ]; };
      environment.etc = mkOption {
        type = types.attrsOf (types.submodule { options.text = mkOption { type = types.lines; }; });
        default = { };
      };
      systemd.services = mkOption { type = types.attrsOf (types.attrsOf types.anything); default = { }; };
      system.activationScripts = mkOption { type = types.attrsOf types.anything; default = { }; };
      networking.firewall = anything;
      services.resolved = anything;
      # services.unbound's user and group default to "unbound" in
      # nixos/modules/services/networking/unbound.nix.
      services.unbound = {
        enable = mkOption { type = types.bool; default = false; };
        user = mkOption { type = types.str; default = "unbound"; };
        group = mkOption { type = types.str; default = "unbound"; };
        resolveLocalQueries = mkOption { type = types.bool; default = true; };
        enableRootTrustAnchor = mkOption { type = types.bool; default = true; };
        # The shape of unbound.nix's freeform settings type, so lists given
        # in two modules (interface) concatenate as they do in NixOS.
        settings = mkOption {
          type = let
            prim = types.oneOf [ types.int types.str types.bool types.float ];
            valid = types.oneOf [ prim (types.listOf prim) ];
            section = types.oneOf [ types.str (types.attrsOf valid) ];
          in types.attrsOf (types.oneOf [ section (types.listOf section) ]);
          default = { };
        };
      };
      # nix-gitops.nix's options that the secrets module reads.
      services.nix-gitops = {
        enable = mkOption { type = types.bool; default = false; };
        package = mkOption { type = types.anything; default = { type = "derivation"; name = "nix-gitops"; outPath = "/nix/store/00000000000000000000000000000000-nix-gitops"; meta.mainProgram = "nix-gitops"; }; };
        healthChecks = anything;
      };
    };
  };
  eval = lib.evalModules {
    modules = [ nixos ../../../nix/modules/nix-gitops-secrets.nix ../../../nix/modules/dns-unbound.nix ] ++ modules;
  };
  cfg = eval.config;
  # The leaf options below an option, as dotted paths ("<name>" for the
  # attribute of an attrsOf submodule), through nested submodules.
  leaves = opt:
    let sub = removeAttrs (opt.type.getSubOptions opt.loc) [ "_module" ]; in
    if sub == { } then [ (lib.concatStringsSep "." opt.loc) ]
    else lib.concatMap leaves (lib.collect lib.isOption sub);
in
{
  secretsJSON = cfg.environment.etc."nix-gitops/secrets.json".text or null;
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) cfg.assertions);
  services = lib.mapAttrs (_: s: { after = s.after or [ ]; wants = s.wants or [ ]; before = s.before or [ ]; }) cfg.systemd.services;
  activation = lib.mapAttrs (_: a: { inherit (a) deps text; }) cfg.system.activationScripts;
  unbound = cfg.services.unbound.settings;
  # Every option a secret and the vault settings have.
  secretOptions = leaves eval.options.services.nix-gitops.secrets;
  vaultOptions = lib.concatMap leaves (lib.collect lib.isOption eval.options.services.nix-gitops.vault);
}
