# Evaluates one machine as the flake composes it (the modules its
# nixosSystem call gets), with modlib as lib and the NixOS stand-in
# (nixos.nix) for nixpkgs' NixOS modules; nixpkgs' proxmox-image.nix is
# replaced by its stand-in (proxmox-image.nix).
#
# Arguments: lib (modlib), tree (the option data), modules.
# Result: { eval, check = { walked, failed }, failedAssertions }.
{ lib, tree, modules }:

let
  nixos = import ./nixos.nix { inherit lib tree; };
  proxmoxImage = "/stub/nixpkgs/nixos/modules/virtualisation/proxmox-image.nix";
  swap = m: if m == proxmoxImage then ./proxmox-image.nix else m;
  eval = lib.evalModules { modules = [ nixos.module ] ++ map swap modules; };
in
{
  inherit eval;
  check = import ./typecheck.nix { inherit lib; standIn = nixos.module._file; } eval;
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) eval.config.assertions);
}
