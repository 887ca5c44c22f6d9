# Option declarations and the shared merge functions, as nixpkgs'
# lib/options.nix defines them (lines at the commit named in default.nix).
lib:
let
  inherit (lib) concatMapStringsSep concatStringsSep foldl' head length tail;
in
rec {
  # options.nix:77
  isOption = x: (x._type or "") == "option";

  # options.nix:139: the declaration is its arguments, tagged; `opt ? default`
  # is true only when a default was given (the @-pattern holds what was
  # passed, not the defaults of the pattern).
  mkOption =
    {
      default ? null,
      defaultText ? null,
      example ? null,
      description ? null,
      relatedPackages ? null,
      type ? null,
      apply ? null,
      internal ? null,
      visible ? null,
      readOnly ? null,
    }@attrs:
    attrs // { _type = "option"; };

  # options.nix:186
  mkEnableOption =
    name:
    mkOption {
      default = false;
      example = true;
      description = "Whether to enable ${name}.";
      type = lib.types.bool;
    };

  # options.nix:714: documentation only.
  literalExpression = text: { _type = "literalExpression"; inherit text; };

  # options.nix:542, :564
  getValues = map (x: x.value);
  getFiles = map (x: x.file);

  # options.nix:470 mergeUniqueOption, :451 mergeOneOption: exactly one
  # definition.
  mergeOneOption =
    loc: defs:
    if length defs == 1 then (head defs).value
    else throw "The option `${showOption loc}' is defined multiple times while it's expected to be unique.\nDefinition values:${showDefs defs}";

  # options.nix:499: all definitions equal, or an error naming both.
  mergeEqualOption =
    loc: defs:
    if length defs == 1 then (head defs).value
    else
      (foldl' (
        first: def:
        if def.value != first.value then
          throw "The option `${showOption loc}' has conflicting definition values:${showDefs [ first def ]}"
        else first
      ) (head defs) (tail defs)).value;

  # options.nix:422 mergeDefaultOption, the merge of types without their own:
  # lists concatenate, attribute sets update, strings must be equal.
  mergeDefaultOption =
    loc: defs:
    let
      list = getValues defs;
    in
    if length list == 1 then head list
    else if builtins.all builtins.isFunction list then x: mergeDefaultOption loc (map (f: f x) list)
    else if builtins.all builtins.isList list then builtins.concatLists list
    else if builtins.all builtins.isAttrs list then foldl' (a: b: a // b) { } list
    else if builtins.all builtins.isBool list then builtins.any (x: x) list
    else if builtins.all builtins.isString list then builtins.concatStringsSep "" list
    else throw "Cannot merge definitions of `${showOption loc}'. Definition values:${showDefs defs}";

  # options.nix:817: a path for messages; "<name>" and "*" stay as they are.
  showOption =
    parts:
    concatStringsSep "." (map (part:
      if part == "*" || builtins.match "<(.*)>" part != null then part else lib.escapeNixIdentifier part) parts);
  showFiles = files: concatStringsSep " and " (map (f: "`${f}'") files);

  # options.nix:834 showDefs: each definition's file and, when it can be
  # shown, its value (a short rendering of ours instead of
  # lib.generators.toPretty).
  showDefs = concatMapStringsSep "" (def:
    let
      shown = builtins.tryEval (showValue 3 def.value);
    in
    "\n- In `${toString def.file}'" + (if shown.success then ": " + shown.value else ""));

  showValue =
    depth: v:
    if builtins.isString v || builtins.isInt v || builtins.isBool v || v == null || builtins.isFloat v then builtins.toJSON v
    else if builtins.isPath v then toString v
    else if builtins.isFunction v then "<function>"
    else if builtins.isList v then
      (if depth == 0 then "[ ... ]" else "[ " + concatStringsSep " " (map (showValue (depth - 1)) v) + " ]")
    else if v ? outPath then "<derivation ${v.name or "?"}>"
    else if v ? _type then "<${v._type}>"
    else if depth == 0 then "{ ... }"
    else "{ " + concatStringsSep " " (map (n: "${lib.escapeNixIdentifier n} = ${showValue (depth - 1) v.${n}};") (builtins.attrNames v)) + " }";
}
