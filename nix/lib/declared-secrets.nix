# The secrets each host declares (services.nix-gitops.secrets), by name, for
# `labctl validate`: a host that declares any needs a Vault role in its
# claim. Evaluated with nixpkgs' real lib.evalModules over this repo's own
# modules and the host's configuration.nix. NixOS's own options are not
# declared here and never read: `_module.check = false` lets their
# definitions pass unchecked (nix flake check checks them), so this needs
# only nixpkgs' lib and costs milliseconds per host.
{ lib, modulesDir, hostsDir, hosts }:

let
  modules = map (f: modulesDir + "/${f}")
    (builtins.filter (f: lib.hasSuffix ".nix" f) (builtins.attrNames (builtins.readDir modulesDir)));
  secretsOf = host: builtins.attrNames (lib.evalModules {
    modules = modules ++ [
      (hostsDir + "/${host}/configuration.nix")
      {
        _module.check = false;
        _module.args = {
          pkgs = throw "declared-secrets.nix: a module read pkgs to declare a secret";
          modulesPath = throw "declared-secrets.nix: a module read modulesPath to declare a secret";
        };
      }
    ];
  }).config.services.nix-gitops.secrets;
in
lib.genAttrs hosts secretsOf
