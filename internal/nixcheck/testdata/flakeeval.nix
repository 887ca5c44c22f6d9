# Evaluates the repo's flake.nix outputs with real nix against a stub nixpkgs
# (nixpkgs cannot be fetched here). nixosSystem and the builders return their
# arguments, so the result shows what the flake wires together: which
# machines with which modules, which packages with which vendorHash, which
# checks. machine.nix then evaluates a machine's modules against NixOS's
# option data; `nix flake check` evaluates them against NixOS itself.
# lib is modlib (../modlib, our stand-in of nixpkgs' lib) with nixosSystem
# stubbed.
{ flakeDir, lib }:

let
  flake = import (flakeDir + "/flake.nix");
  stubLib = lib // {
    nixosSystem = args: {
      inherit args;
      config.system.build = { toplevel = "toplevel"; VMA = "vma"; };
    };
  };
  stubPkgs = {
    lib = stubLib;
    buildGoModule = args: { kind = "buildGoModule"; inherit args; };
    mkShell = args: { kind = "mkShell"; inherit args; };
    testers.runNixOSTest = args: { kind = "nixosTest"; inherit args; };
    writeShellScript = name: text: "/stub/${name}";
    coreutils = "/stub/coreutils";
    git = "/stub/git";
    go = "go"; gopls = "gopls"; gnumake = "make"; nix = "nix"; kubectl = "kubectl";
    qemu = "qemu"; xorriso = "xorriso"; jq = "jq";
  };
  nixpkgs = {
    lib = stubLib;
    legacyPackages.x86_64-linux = stubPkgs;
    legacyPackages.aarch64-linux = stubPkgs;
    outPath = "/stub/nixpkgs";
  };
  self = outputs // { outPath = flakeDir; shortRev = "0000000"; };
  agentPackage = outputs.packages.x86_64-linux.nix-gitops.args;
  outputs = flake.outputs { inherit self nixpkgs; };
  names = a: builtins.attrNames a;
in
{
  inputs = flake.inputs;
  nixosConfigurations = builtins.mapAttrs
    (_: m: map (x: if builtins.isPath x then toString x else if builtins.isString x then x else "<inline>") m.args.modules)
    outputs.nixosConfigurations;
  nixosModules = names outputs.nixosModules;
  # Each machine's modules as nixosSystem gets them (for machine.nix; not JSON).
  machineModules = builtins.mapAttrs (_: m: m.args.modules) outputs.nixosConfigurations;
  # The modules, for tests that import one alone (not JSON).
  modules = outputs.nixosModules;
  packages = builtins.mapAttrs
    (_: p: if builtins.isAttrs p && p ? args then { inherit (p.args) pname; vendorHash = p.args.vendorHash; } else { pname = "<${p}>"; vendorHash = ""; })
    outputs.packages.x86_64-linux;
  checks = names outputs.checks.x86_64-linux;
  vmTestNodes = names outputs.checks.x86_64-linux.agent-vm.args.nodes;
  # The VM test's node module, for the option-path check (not JSON).
  vmTestNode = outputs.checks.x86_64-linux.agent-vm.args.nodes.machine;
  # Forced only by the test that hands it to python3 (it copies fixtures/ to the store).
  vmTestScript = outputs.checks.x86_64-linux.agent-vm.args.testScript;
  devShells = names outputs.devShells.x86_64-linux;
  packageSystems = names outputs.packages;
  # The agent package: a fixed version, built from its fileset's store path.
  agent = { inherit (agentPackage) version; src = "${agentPackage.src}"; };
}
