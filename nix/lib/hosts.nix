# The flake's host list, discovered from the tree: every folder nix/hosts/<name>
# that holds a configuration.nix is a host, and <name> is its hostname and the
# fragment of its flake ref (git+https://…#<name>).
#
# Pure (builtins only), so it evaluates without nixpkgs: the nixcheck tests run
# it with real nix and compare the answer with what `labctl validate` reads, so
# the flake and labctl cannot disagree about which hosts exist.
hostsDir:
let
  entries = builtins.readDir hostsDir;
  isHost = name:
    entries.${name} == "directory"
    && builtins.pathExists (hostsDir + "/${name}/configuration.nix");
in
builtins.filter isHost (builtins.attrNames entries)
