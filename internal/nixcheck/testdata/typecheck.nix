# Forces every value the modules define, and only those, so each meets the
# type of its option (modlib's merge checks what it forces). Options nobody
# defines are left alone: the stand-in declarations of NixOS have no value
# for most of them (their defaults are nixpkgs expressions).
#
# The walk follows the definitions: an option with definitions is forced
# where the definitions have attributes (a submodule, an attribute set),
# and deeply at the leaves. Result: { walked, failed }: the paths forced,
# and those whose forcing threw (a type error, an unknown option inside a
# submodule, a failed assertion in a value).
{ lib, standIn }:
eval:

let
  inherit (builtins) attrNames concatMap filter isAttrs tryEval;
  show = lib.concatStringsSep ".";
  # A definition below the option level: its properties resolved as the
  # merge would (modules.nix:1375 dischargeProperties, :1415 overrides).
  norm = v: concatMap (d: if isAttrs d && ((d._type or "") == "override" || (d._type or "") == "order") then norm d.content else [ d ]) (lib.dischargeProperties v);
  # (`?` only: a submodule's config may have an option named type.)
  isTree = d: isAttrs d && !(d ? _type) && !(d ? outPath);
  leaf = loc: v:
    let r = tryEval (builtins.deepSeq v true); in
    { walked = [ (show loc) ]; failed = if r.success then [ ] else [ (show loc) ]; };
  join = rs: { walked = concatMap (r: r.walked) rs; failed = concatMap (r: r.failed) rs; };
  walk = loc: value: defs:
    let
      v = tryEval value;
      ds = filter isTree (concatMap norm defs);
      names = lib.unique (concatMap attrNames ds);
    in
    if !v.success then { walked = [ (show loc) ]; failed = [ (show loc) ]; }
    else if ds != [ ] && isTree v.value then
      join (map (n:
        if (tryEval (v.value ? ${n})).value or false then
          walk (loc ++ [ n ]) v.value.${n} (concatMap (d: if d ? ${n} then [ d.${n} ] else [ ]) ds)
        else { walked = [ ]; failed = [ ]; }) names)
    else leaf loc v.value;
  walkOptions = loc: opts:
    join (map (n:
      let
        o = opts.${n};
        defined = tryEval o.isDefined;
      in
      if n == "_module" then { walked = [ ]; failed = [ ]; }
      # A NixOS option nobody defines keeps the stand-in's default: nothing
      # of ours to check.
      else if lib.isOption o && o.declarations == [ standIn ] && (tryEval o.highestPrio).value or 0 >= 1500 then { walked = [ ]; failed = [ ]; }
      else if lib.isOption o then
        (if !defined.success then { walked = [ (show (loc ++ [ n ])) ]; failed = [ (show (loc ++ [ n ])) ]; }
         else if defined.value then walk (loc ++ [ n ]) o.value o.definitions
         else { walked = [ ]; failed = [ ]; })
      else walkOptions (loc ++ [ n ]) o) (attrNames opts));
in
walkOptions [ ] eval.options
