# Evaluates our NixOS modules with nixpkgs' real lib.evalModules (types,
# mkIf, mkMerge, priorities and option merging as NixOS does them). NixOS
# itself is not here: the options our modules set or read that NixOS
# declares are given permissive STAND-IN declarations below (named as such;
# their real types live in nixpkgs' nixos/modules), and pkgs is a stand-in
# whose packages are names with a store-like path.
#
# Arguments: lib (testdata/lib.nix), modules (our module files and the test's
# settings, as modules). Result: the config, the failed assertions' messages.
{ lib, modules }:

let
  inherit (lib) mkOption types;
  fakePkg = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    meta.mainProgram = name;
  };
  pkgs = {
    inherit lib;
    git = fakePkg "git";
    openssh = fakePkg "openssh";
    gnupg = fakePkg "gnupg";
    runCommand = name: _: _: fakePkg name;
  };
  anything = mkOption { type = types.anything; default = { }; };
  standIns = {
    options = {
      assertions = mkOption { type = types.listOf types.anything; default = [ ]; };
      warnings = mkOption { type = types.listOf types.str; default = [ ]; };
      environment.etc = mkOption { type = types.attrsOf types.anything; default = { }; };
      environment.systemPackages = mkOption { type = types.listOf types.anything; default = [ ]; };
      systemd.packages = mkOption { type = types.listOf types.anything; default = [ ]; };
      systemd.services = mkOption { type = types.attrsOf types.anything; default = { }; };
      systemd.timers = mkOption { type = types.attrsOf types.anything; default = { }; };
      systemd.package = mkOption { type = types.anything; default = fakePkg "systemd"; };
      nix.package = mkOption { type = types.anything; default = fakePkg "nix"; };
      networking.proxy.envVars = mkOption { type = types.attrsOf types.str; default = { }; };
      services.openssh = {
        enable = mkOption { type = types.bool; default = false; };
        startWhenNeeded = mkOption { type = types.bool; default = false; };
      };
      services.unbound = anything;
      services.resolved = anything;
      networking.firewall = anything;
    };
  };
  eval = lib.evalModules {
    modules = [ standIns { _module.args = { inherit pkgs; }; } ] ++ modules;
  };
in
{
  inherit (eval) config;
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) eval.config.assertions);
}
