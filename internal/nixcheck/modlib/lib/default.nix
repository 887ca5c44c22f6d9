# modlib: a small module system of our own, a test STAND-IN for nixpkgs'
# lib (named as such). nixpkgs cannot be fetched here and no copy of its
# code may enter the repo, so the tests evaluate nix/modules, nix/lib and
# flake.nix with this: the part of lib they use, written here from a
# reading of nixpkgs, each rule citing the file and line it follows.
#
# Citations ("modules.nix:1185") are lines of nixpkgs' lib/ as the
# nix-community/nixpkgs.lib mirror holds it at
# de42d44212d207476489bce163375d8306a26d59 (2026-06-14, the 26.05 line).
#
# What it leaves out, on purpose: type merging of options declared twice
# (an error here), disabledModules, _class, the v2 merge bookkeeping
# (valueMeta), documentation rendering. Where a nixpkgs rule has more cases
# than our Nix reaches, the comment says which case is kept.
#
# Importable as `import <folder>/lib`, the layout of a nixpkgs checkout, so
# `labctl validate --nixpkgs <folder>` can run on it too.
let
  lib =
    import ./helpers.nix
    // import ./options.nix lib
    // import ./modules.nix lib
    // {
      types = import ./types.nix lib;
    };
in
lib
