# The plain functions of nixpkgs' lib that nix/, flake.nix and the module
# system below use, each as the named nixpkgs file defines it
# (lists.nix, attrsets.nix, strings.nix, trivial.nix, meta.nix at the
# commit named in default.nix). Builtins are passed through.
let
  inherit (builtins)
    attrNames
    attrValues
    concatLists
    concatMap
    concatStringsSep
    elem
    filter
    foldl'
    genList
    head
    isAttrs
    isList
    isString
    length
    listToAttrs
    match
    replaceStrings
    stringLength
    substring
    tail
    ;
in
rec {
  inherit
    attrNames
    attrValues
    concatLists
    concatMap
    concatStringsSep
    elem
    filter
    foldl'
    head
    isAttrs
    isList
    isString
    length
    listToAttrs
    tail
    ;
  inherit (builtins)
    isBool
    isInt
    isFloat
    isFunction
    isPath
    mapAttrs
    seq
    deepSeq
    typeOf
    ;

  # trivial.nix
  id = x: x;
  flip = f: a: b: f b a;
  boolToString = b: if b then "true" else "false";
  min = x: y: if x < y then x else y;
  # trivial.nix functionArgs: a functor's arguments are its __functor's.
  functionArgs = f: if f ? __functor then f.__functionArgs or (functionArgs (f.__functor f)) else builtins.functionArgs f;

  # asserts.nix assertMsg
  assertMsg = pred: msg: pred || throw msg;

  # lists.nix
  optional = cond: elem: if cond then [ elem ] else [ ];
  optionals = cond: elems: if cond then elems else [ ];
  toList = x: if isList x then x else [ x ];
  last = list: builtins.elemAt list (length list - 1);
  init = list: genList (builtins.elemAt list) (length list - 1);
  imap1 = f: list: genList (n: f (n + 1) (builtins.elemAt list n)) (length list);
  any = builtins.any;
  all = builtins.all;
  reverseList = xs: let l = length xs; in genList (n: builtins.elemAt xs (l - n - 1)) l;
  unique = foldl' (acc: e: if elem e acc then acc else acc ++ [ e ]) [ ];
  count = pred: foldl' (c: x: if pred x then c + 1 else c) 0;

  # attrsets.nix
  nameValuePair = name: value: { inherit name value; };
  optionalAttrs = cond: as: if cond then as else { };
  mapAttrs' = f: set: listToAttrs (map (attr: f attr set.${attr}) (attrNames set));
  mapAttrsToList = f: attrs: map (name: f name attrs.${name}) (attrNames attrs);
  filterAttrs = pred: set: removeAttrs set (filter (name: !pred name set.${name}) (attrNames set));
  genAttrs = names: f: listToAttrs (map (n: nameValuePair n (f n)) names);
  catAttrs = builtins.catAttrs;
  zipAttrsWith = builtins.zipAttrsWith;
  zipAttrs = zipAttrsWith (name: values: values);
  attrByPath =
    attrPath: default: set:
    if attrPath == [ ] then set
    else if isAttrs set && set ? ${head attrPath} then attrByPath (tail attrPath) default set.${head attrPath}
    else default;
  getAttrFromPath = attrPath: set: attrByPath attrPath (throw "cannot find attribute `${concatStringsSep "." attrPath}'") set;
  setAttrByPath = attrPath: value: if attrPath == [ ] then value else { ${head attrPath} = setAttrByPath (tail attrPath) value; };
  hasAttrByPath = attrPath: set: attrByPath attrPath null set != null;
  collect = pred: attrs: if pred attrs then [ attrs ] else if isAttrs attrs then concatMap (collect pred) (attrValues attrs) else [ ];
  # attrsets.nix mapAttrsRecursiveCond: recurse while cond holds.
  mapAttrsRecursiveCond =
    cond: f: set:
    let
      recurse = path: builtins.mapAttrs (name: value:
        if isAttrs value && cond value then recurse (path ++ [ name ]) value else f (path ++ [ name ]) value);
    in
    recurse [ ] set;
  # attrsets.nix recursiveUpdateUntil / recursiveUpdate: the right side wins
  # below attribute sets on both sides.
  recursiveUpdate =
    lhs: rhs:
    lhs // builtins.mapAttrs (n: v: if isAttrs v && isAttrs (lhs.${n} or null) then recursiveUpdate lhs.${n} v else v) rhs;
  isDerivation = x: (x.type or null) == "derivation";

  # strings.nix
  optionalString = cond: string: if cond then string else "";
  concatMapStringsSep = sep: f: list: concatStringsSep sep (map f list);
  hasPrefix = pref: str: substring 0 (stringLength pref) str == pref;
  hasSuffix =
    suffix: content:
    let
      lenContent = stringLength content;
      lenSuffix = stringLength suffix;
    in
    lenContent >= lenSuffix && substring (lenContent - lenSuffix) lenContent content == suffix;
  hasInfix = infix: content: match ".*${escapeRegex infix}.*" content != null;
  removePrefix = prefix: str: if hasPrefix prefix str then substring (stringLength prefix) (stringLength str) str else str;
  removeSuffix =
    suffix: str:
    if hasSuffix suffix str then substring 0 (stringLength str - stringLength suffix) str else str;
  escapeRegex = replaceStrings [ "\\" "[" "{" "(" ")" "^" "$" "?" "*" "+" "|" "." ] [ "\\\\" "\\[" "\\{" "\\(" "\\)" "\\^" "\\$" "\\?" "\\*" "\\+" "\\|" "\\." ];
  # strings.nix:1200 escapeShellArg: quoted unless only safe characters.
  escapeShellArg =
    arg:
    let
      string = toString arg;
    in
    if match "[[:alnum:],._+:@%/-]+" string == null then "'${replaceStrings [ "'" ] [ "'\\''" ] string}'" else string;
  escapeShellArgs = concatMapStringsSep " " escapeShellArg;
  isStringLike = x: isString x || builtins.isPath x || x ? outPath || x ? __toString;
  # strings.nix escapeNixIdentifier, as showOption uses it: a name that is
  # not an identifier is quoted.
  escapeNixIdentifier = s: if match "[a-zA-Z_][a-zA-Z0-9_'-]*" s != null then s else builtins.toJSON s;

  # meta.nix:526 getExe: <package>/bin/<meta.mainProgram>.
  getExe = x: "${x}/bin/${x.meta.mainProgram or x.pname or x.name}";
}
