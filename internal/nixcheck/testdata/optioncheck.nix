# Checks every option path that NixOS modules set against a list of real
# NixOS option declarations plus the options our own modules declare.
#
# Real nix evaluates the modules, but with a stub `lib` (no nixpkgs here):
# mkIf/mkMerge/mkDefault/mkForce keep their content, so every branch is
# walked whatever its condition, and values below a known option are never
# forced. `config` is the defaults of the options our modules declare, which
# is all the modules read outside option values; `options` is their
# declarations.
#
# Arguments:
#   allowlist: path of a text file, one NixOS option path a line, "<name>"
#              for an attribute-set-of-submodules component, "#" comments;
#   modules:   list of modules: paths of module files, or module values
#              (a function or an attribute set each).
# Result: { declared, set, unknown: lists of paths; config: the defaults }
{ allowlist, modules }:

let
  inherit (builtins)
    attrNames concatLists concatStringsSep elem filter foldl' genList head
    isAttrs isFunction isList length listToAttrs mapAttrs split tail;

  # ---- the stub lib -------------------------------------------------------
  mkType = name: { _type = "type"; inherit name; };
  lib = rec {
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = what: mkOption { type = types.bool; default = false; description = "Whether to enable ${what}."; };
    mkPackageOption = _: name: _: mkOption { type = types.package; default = null; description = name; };
    mkIf = cond: content: { _type = "if"; inherit content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    mkOverride = prio: content: { _type = "override"; inherit content; };
    mkDefault = mkOverride 1000;
    mkForce = mkOverride 50;
    mkBefore = content: { _type = "order"; inherit content; };
    mkAfter = mkBefore;
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    types = {
      bool = mkType "bool"; str = mkType "str"; int = mkType "int"; port = mkType "port";
      path = mkType "path"; lines = mkType "lines"; package = mkType "package";
      singleLineStr = mkType "singleLineStr"; nonEmptyStr = mkType "nonEmptyStr";
      attrs = mkType "attrs"; anything = mkType "anything";
      ints = { positive = mkType "positive"; unsigned = mkType "unsigned"; };
      strMatching = _: mkType "strMatching";
      enum = _: mkType "enum";
      nullOr = t: mkType "nullOr";
      listOf = t: mkType "listOf";
      attrsOf = t: mkType "attrsOf";
      either = a: b: mkType "either";
      oneOf = ts: mkType "oneOf";
      submodule = m: mkType "submodule";
    };
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: xs: if c then xs else [ ];
    optionalAttrs = c: a: if c then a else { };
    optionalString = c: s: if c then s else "";
    concatStringsSep = builtins.concatStringsSep;
    concatMapStringsSep = sep: f: xs: builtins.concatStringsSep sep (map f xs);
    concatLists = builtins.concatLists;
    mapAttrsToList = f: a: map (n: f n a.${n}) (attrNames a);
    mapAttrs = builtins.mapAttrs;
    filterAttrs = p: a: listToAttrs (filter (x: p x.name x.value) (map (n: { name = n; value = a.${n}; }) (attrNames a)));
    escapeShellArg = s: "'" + s + "'";
    escapeShellArgs = xs: builtins.concatStringsSep " " (map escapeShellArg xs);
    getExe = p: "${p}/bin/stub";
    hasPrefix = p: s: builtins.substring 0 (builtins.stringLength p) s == p;
    boolToString = b: if b then "true" else "false";
    filter = builtins.filter;
    genAttrs = names: f: listToAttrs (map (n: { name = n; value = f n; }) names);
    unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];
    hasSuffix = s: x: let l = builtins.stringLength x; n = builtins.stringLength s; in l >= n && builtins.substring (l - n) n x == s;
    removeSuffix = s: x: let l = builtins.stringLength x; n = builtins.stringLength s; in
      if hasSuffix s x then builtins.substring 0 (l - n) x else x;
  };

  # ---- the allowed NixOS option paths -------------------------------------
  lines = filter (l: builtins.isString l) (split "\n" (builtins.readFile allowlist));
  stripComment = l: head (split "#" l);
  trim = s: let m = builtins.match "[ \t]*([^ \t]*)[ \t]*" s; in if m == null then s else head m;
  allowed = map (l: filter builtins.isString (split "\\." l))
    (filter (l: l != "") (map (l: trim (stripComment l)) lines));

  # ---- the modules ---------------------------------------------------------
  call = m:
    let f = if builtins.isPath m || builtins.isString m then import m else m; in
    if isFunction f then f { inherit lib config options; pkgs = { }; modulesPath = "/modules"; } else f;
  shapes = map (m: let v = call m; in
    if v ? options || v ? config then { options = v.options or { }; config = v.config or { }; }
    else { options = { }; config = removeAttrs v [ "imports" ]; }) modules;

  isOption = v: isAttrs v && (v._type or null) == "option";
  # Paths of the options a tree declares.
  declaredIn = path: tree:
    if isOption tree then [ path ]
    else if isAttrs tree then concatLists (map (n: declaredIn (path ++ [ n ]) tree.${n}) (attrNames tree))
    else throw "option tree at ${concatStringsSep "." path} holds a value, not mkOption";
  declared = concatLists (map (s: declaredIn [ ] s.options) shapes);
  # `options` as modules see it: the declarations of all modules checked
  # together (lazily, as in NixOS: a module may test `options ? x.y`).
  options = foldl' deepMerge { } (map (s: s.options) shapes);

  # `config` as our modules see it: the defaults of their own options.
  defaults = tree:
    if isOption tree then (tree.default or (throw "option without default read from config"))
    else mapAttrs (_: defaults) tree;
  deepMerge = a: b: a // mapAttrs (n: v: if a ? ${n} && isAttrs v && isAttrs a.${n} && !(isOption v) then deepMerge a.${n} v else v) b;
  config = foldl' deepMerge { } (map (s: defaults s.options) shapes);

  # ---- matching -------------------------------------------------------------
  known = allowed ++ declared;
  compMatch = pat: c: pat == "<name>" || pat == c;
  # pattern matches path on its first length(path) components
  prefixMatch = pat: path:
    length pat >= length path
    && foldl' (ok: i: ok && compMatch (builtins.elemAt pat i) (builtins.elemAt path i)) true (genList (i: i) (length path));
  isLeaf = path: builtins.any (pat: length pat == length path && prefixMatch pat path) known;
  isPrefix = path: builtins.any (pat: length pat > length path && prefixMatch pat path) known;

  unwrap = v: if isAttrs v && elem (v._type or null) [ "if" "override" "order" ] then unwrap v.content else v;

  # walk returns { set, unknown } lists for value v at path.
  walk = path: v0:
    let v = unwrap v0; in
    if path != [ ] && isLeaf path then { set = [ (concatStringsSep "." path) ]; unknown = [ ]; }
    else if isAttrs v && (v._type or null) == "merge" then joinAll (map (walk path) v.contents)
    else if isAttrs v && (path == [ ] || isPrefix path) then joinAll (map (n: walk (path ++ [ n ]) v.${n}) (attrNames v))
    else { set = [ ]; unknown = [ (concatStringsSep "." path) ]; };
  joinAll = rs: { set = concatLists (map (r: r.set) rs); unknown = concatLists (map (r: r.unknown) rs); };

  result = joinAll (map (s: walk [ ] s.config) shapes);
in
{
  declared = map (concatStringsSep ".") declared;
  inherit (result) set unknown;
  # The defaults of the declared options, as the modules read them.
  inherit config;
}
