# A STAND-IN for how nixpkgs' nixos/modules/services/networking/unbound.nix
# renders services.unbound.settings into unbound.conf (NixOS 26.05; the
# module itself is not here). What it models of that module's rendering:
# "server:" first, then every other top-level key; each key as "key: value"
# indented under its clause; lists repeat the key; booleans are yes/no;
# strings go out as they are (so the module quotes what needs quotes); a
# list of attribute sets is one clause per set (forward-zone, stub-zone).
# The module's own defaults (interface, access-control, trust anchor,
# remote-control) are left to the test, which sets what a run on loopback
# needs.
{ settings }:

let
  inherit (builtins) attrNames concatStringsSep isAttrs isBool isInt isList isString map toString;
  option = indent: n: v: "${indent}${n}: ${v}";
  render = indent: n: v:
    if isBool v then option indent n (if v then "yes" else "no")
    else if isInt v then option indent n (toString v)
    else if isString v then option indent n v
    else if isList v then concatStringsSep "\n" (map (render indent n) v)
    else if isAttrs v then concatStringsSep "\n" ([ "${indent}${n}:" ] ++ map (k: render "${indent}  " k v.${k}) (attrNames v))
    else throw "unbound settings: ${n} has a value of an unexpected type";
  others = removeAttrs settings [ "server" ];
in
concatStringsSep "\n" (
  [ "server:" ]
  ++ map (k: render "  " k settings.server.${k}) (attrNames settings.server)
  ++ map (k: render "" k others.${k}) (attrNames others)
) + "\n"
