# Probes our own options with values their types accept, to find an option
# of ours that is wider than a NixOS option its value reaches: each probe
# value is set (mkOverride 10) on a machine with every module on, and the
# machine's defined values are checked against NixOS's option data
# (typecheck.nix). A probe that makes a check fail that the machine without
# it passes is reported, with the NixOS paths that failed.
#
# Probes are tried together, one value kind at a time, and a failing group
# is split in halves until single probes fail (or a pair fails only
# together, reported as the group).
#
# Arguments: lib (modlib), tree (the option data), modules (the machine),
# ourDir (nix/modules: whose options are ours), bases (submodule path ->
# the definition an entry needs besides the probed option, for submodules
# with options that have no default).
{ lib, tree, modules, ourDir, bases }:

let
  inherit (builtins) attrNames concatMap filter genList length elemAt isString toString;
  machine = extra: import ./machine.nix { inherit lib tree; modules = modules ++ extra; };
  baseline = (machine [ ]).check.failed;
  show = lib.concatStringsSep ".";
  isOurs = o: builtins.any (d: lib.hasPrefix (toString ourDir) (toString d)) (o.declarations or [ ]);

  # Our options, with those of our submodules ("<name>" for an attribute of
  # an attrsOf submodule).
  eval = (machine [ ]).eval;
  subOptions = o:
    let sub = removeAttrs (o.type.getSubOptions o.loc) [ "_module" ]; in
    lib.collect lib.isOption sub;
  expand = o: if o.type.getSubModules or null != null then concatMap expand (subOptions o) else [ o ];
  ours = concatMap expand (filter isOurs (lib.collect lib.isOption eval.options));

  # Values to try, by type: strings that other types refuse (spaces, new
  # lines, colons, no unit suffix, empty) and some they take (a unit name, a
  # number of days), lists and sets of them.
  strings = [ "x" "" "a b" "a\nb" "a:b" "x.service" "7d" ];
  probesOf = t:
    let n = t.name; in
    if n == "str" || n == "singleLineStr" || n == "nonEmptyStr" || lib.hasPrefix "strMatching" n || n == "separatedString" then strings
    else if n == "listOf" then map (v: [ v ]) (probesOf t.nestedTypes.elemType)
    else if n == "attrsOf" then map (v: { probe = v; }) (probesOf t.nestedTypes.elemType)
    else if n == "nullOr" then probesOf t.nestedTypes.elemType
    else if n == "either" then probesOf t.nestedTypes.left ++ probesOf t.nestedTypes.right
    else if n == "enum" then [ ]
    else if n == "bool" then [ true false ]
    else if n == "int" || lib.hasPrefix "unsignedInt" n || n == "intBetween" || n == "positiveInt" then [ 0 (-1) 65536 ]
    else [ ];
  # Only values the option's own type takes (its merge checks below the
  # head).
  accepted = o: v: (builtins.tryEval (builtins.deepSeq
    (lib.mergeDefinitions o.loc o.type [ { file = "probe"; value = v; } ]).mergedValue true)).value or false;

  # The definition of one probe: the value at the option's path ("<name>"
  # becomes "probe"), inside its submodules' bases.
  definition = o: v:
    let
      loc = map (c: if c == "<name>" then "probe" else c) o.loc;
      build = i:
        if i == length loc then lib.mkOverride 10 v
        else
          let
            prefix = genList (j: elemAt o.loc j) (i + 1);
            base = bases.${show prefix} or { };
          in
          { ${elemAt loc i} = base // build (i + 1); };
    in
    build 0;

  kinds = builtins.length strings;
  probesAt = k: concatMap (o:
    let vs = filter (accepted o) (probesOf o.type); in
    if k < length vs then [ { option = show o.loc; value = elemAt vs k; def = definition o (elemAt vs k); } ] else [ ]) ours;
  newFailures = ps:
    let f = (machine (map (p: p.def) ps)).check.failed; in
    filter (x: !(builtins.elem x baseline)) f;
  bisect = ps:
    let f = newFailures ps; in
    if f == [ ] then [ ]
    else if length ps == 1 then [ { inherit (builtins.head ps) option; value = builtins.head ps; failed = f; } ]
    else
      let
        half = length ps / 2;
        l = genList (i: elemAt ps i) half;
        r = genList (i: elemAt ps (i + half)) (length ps - half);
        found = bisect l ++ bisect r;
      in
      if found == [ ] then [ { option = lib.concatMapStringsSep " + " (p: p.option) ps; value = null; failed = f; } ] else found;
in
{
  inherit baseline;
  options = map (o: show o.loc) ours;
  probed = lib.unique (concatMap (k: map (p: p.option) (probesAt k)) (genList (k: k) kinds));
  findings = map (x: { inherit (x) option failed; value = if x.value == null then null else lib.showValue 2 x.value.value; })
    (concatMap (k: bisect (probesAt k)) (genList (k: k) kinds));
}
