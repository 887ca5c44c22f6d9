# Option types, as nixpkgs' lib/types.nix defines them (lines at the commit
# named in default.nix). A type's check looks at the value's head only;
# what is below it (list elements, attribute values, submodule options) is
# checked by its merge, through mergeDefinitions, as upstream does
# (types.nix:205-:218, the comment on `check`).
lib:
let
  inherit (lib)
    all
    concatLists
    concatStringsSep
    elem
    filter
    filterAttrs
    foldl'
    getValues
    hasInfix
    head
    imap1
    isAttrs
    isBool
    isFloat
    isFunction
    isInt
    isList
    isString
    last
    length
    mapAttrs
    mergeEqualOption
    mergeOneOption
    showDefs
    showOption
    tail
    zipAttrsWith
    ;
  inherit (lib) mergeDefinitions;

  # types.nix:302: a description, in parentheses unless its class fits.
  phrase = unparenthesize: t: if unparenthesize (t.descriptionClass or null) then t.description else "(${t.description})";
in
rec {
  # types.nix:187 mkOptionType.
  mkOptionType =
    {
      name,
      description ? null,
      descriptionClass ? null,
      check ? (x: true),
      merge ? lib.mergeDefaultOption,
      emptyValue ? { },
      getSubOptions ? prefix: { },
      getSubModules ? null,
      nestedTypes ? { },
    }:
    {
      _type = "option-type";
      inherit name check merge emptyValue getSubOptions getSubModules nestedTypes descriptionClass;
      description = if description == null then name else description;
    };
  isOptionType = x: (x._type or "") == "option-type";

  # types.nix:318, :326, :368
  raw = mkOptionType { name = "raw"; description = "raw value"; descriptionClass = "noun"; merge = mergeOneOption; };
  anything = mkOptionType {
    name = "anything";
    description = "anything";
    descriptionClass = "noun";
    # types.nix:331: one common type; attribute sets merge as attrsOf
    # anything, packages (string-coercible sets) only once, the rest equal.
    merge =
      loc: defs:
      let
        getType = value: if isAttrs value && lib.isStringLike value then "stringCoercibleSet" else builtins.typeOf value;
        commonType = foldl' (type: def:
          if getType def.value == type then type
          else throw "The option `${showOption loc}' has conflicting option types in ${lib.showFiles (lib.getFiles defs)}") (getType (head defs).value) defs;
      in
      ({
        set = (attrsOf anything).merge;
        stringCoercibleSet = mergeOneOption;
        lambda = loc: defs: arg: anything.merge (loc ++ [ "<function body>" ]) (map (def: { inherit (def) file; value = def.value arg; }) defs);
      }.${commonType} or mergeEqualOption) loc defs;
  };
  unspecified = mkOptionType { name = "unspecified"; description = "unspecified value"; descriptionClass = "noun"; };

  # types.nix:374, :397
  bool = mkOptionType { name = "bool"; description = "boolean"; descriptionClass = "noun"; check = isBool; merge = mergeEqualOption; };
  int = mkOptionType { name = "int"; description = "signed integer"; descriptionClass = "noun"; check = isInt; merge = mergeEqualOption; };

  # types.nix:406 ints.
  ints =
    let
      betweenDesc = lowest: highest: "${toString lowest} and ${toString highest} (both inclusive)";
      between = lowest: highest: addCheck int (x: x >= lowest && x <= highest) // {
        name = "intBetween";
        description = "integer between ${betweenDesc lowest highest}";
      };
      unsign = bit: range: between 0 (range - 1) // {
        name = "unsignedInt${toString bit}";
        description = "${toString bit} bit unsigned integer; between ${betweenDesc 0 (range - 1)}";
      };
    in
    {
      inherit between;
      unsigned = addCheck int (x: x >= 0) // { name = "unsignedInt"; description = "unsigned integer, meaning >=0"; descriptionClass = "nonRestrictiveClause"; };
      positive = addCheck int (x: x > 0) // { name = "positiveInt"; description = "positive integer, meaning >0"; descriptionClass = "nonRestrictiveClause"; };
      u8 = unsign 8 256;
      u16 = unsign 16 65536;
      u32 = unsign 32 4294967296;
    };
  # types.nix:478
  port = ints.u16;

  # types.nix:480, :488
  float = mkOptionType { name = "float"; description = "floating point number"; descriptionClass = "noun"; check = isFloat; merge = mergeEqualOption; };
  number = either int float;

  # types.nix:517, :525, :534, :546
  str = mkOptionType { name = "str"; description = "string"; descriptionClass = "noun"; check = isString; merge = mergeEqualOption; };
  nonEmptyStr = str // { name = "nonEmptyStr"; description = "non-empty string"; check = x: str.check x && builtins.match "[ \t\n]*" x == null; };
  singleLineStr = mkOptionType {
    name = "singleLineStr";
    description = "(optionally newline-terminated) single-line string";
    descriptionClass = "noun";
    inherit (strMatching "[^\n\r]*\n?") check;
    merge = loc: defs: lib.removeSuffix "\n" (mergeEqualOption loc defs);
  };
  strMatching =
    pattern:
    mkOptionType {
      name = "strMatching ${builtins.toJSON pattern}";
      description = "string matching the pattern ${pattern}";
      descriptionClass = "noun";
      check = x: str.check x && builtins.match pattern x != null;
      merge = mergeEqualOption;
    };

  # types.nix:563 separatedString, :578 lines, :579 commas.
  separatedString =
    sep:
    mkOptionType {
      name = "separatedString";
      description = "strings concatenated with ${builtins.toJSON sep}";
      descriptionClass = "noun";
      check = isString;
      merge = loc: defs: concatStringsSep sep (getValues defs);
    };
  lines = separatedString "\n";
  commas = separatedString ",";

  # types.nix:582 passwdEntry.
  passwdEntry =
    entryType:
    addCheck entryType (s: !(hasInfix ":" s || hasInfix "\n" s)) // {
      name = "passwdEntry ${entryType.name}";
      description = "${phrase (c: c == "noun") entryType}, not containing newlines or colons";
      descriptionClass = "nonRestrictiveClause";
    };

  # types.nix:593
  attrs = mkOptionType {
    name = "attrs";
    description = "attribute set";
    check = isAttrs;
    merge = loc: foldl' (res: def: res // def.value) { };
    emptyValue = { value = { }; };
  };

  # types.nix:620: a derivation or a store path, defined once.
  package = mkOptionType {
    name = "package";
    descriptionClass = "noun";
    check = x: lib.isDerivation x || (isString x && lib.hasPrefix builtins.storeDir x);
    merge = mergeOneOption;
  };

  # types.nix:645 path = pathWith { absolute = true; } (:658): a path or a
  # string-like value starting with "/", equal definitions.
  path = mkOptionType {
    name = "path";
    description = "absolute path";
    descriptionClass = "noun";
    check = x: lib.isStringLike x && builtins.substring 0 1 (toString x) == "/";
    merge = mergeEqualOption;
  };

  # types.nix:705 listOf: each element merged (and so checked) on its own,
  # at loc ++ [ "[definition n-entry m]" ].
  listOf =
    elemType:
    mkOptionType {
      name = "listOf";
      description = "list of ${phrase (c: c == "noun" || c == "composite") elemType}";
      descriptionClass = "composite";
      check = isList;
      merge =
        loc: defs:
        map (x: x.optionalValue.value or x.mergedValue) (filter (x: x.optionalValue ? value) (concatLists (imap1 (n: def:
          imap1 (m: def':
            mergeDefinitions (loc ++ [ "[definition ${toString n}-entry ${toString m}]" ]) elemType [ { inherit (def) file; value = def'; } ])
            def.value) defs)));
      emptyValue = { value = [ ]; };
      getSubOptions = prefix: elemType.getSubOptions (prefix ++ [ "*" ]);
      getSubModules = elemType.getSubModules;
      nestedTypes.elemType = elemType;
    };

  # types.nix:944 attrsOf, :951 lazyAttrsOf, :959 attrsWith: each attribute
  # merged on its own at loc ++ [ name ]; an attribute whose definitions all
  # vanish (mkIf false) is dropped, unless lazy.
  attrsOf = elemType: attrsWith { inherit elemType; };
  lazyAttrsOf = elemType: attrsWith { inherit elemType; lazy = true; };
  attrsWith =
    { elemType, lazy ? false }:
    let
      pushPositions = map (def: mapAttrs (n: v: { inherit (def) file; value = v; }) def.value);
    in
    mkOptionType {
      name = if lazy then "lazyAttrsOf" else "attrsOf";
      description = (if lazy then "lazy attribute set" else "attribute set") + " of ${phrase (c: c == "noun" || c == "composite") elemType}";
      descriptionClass = "composite";
      check = isAttrs;
      merge =
        loc: defs:
        let
          evals = zipAttrsWith (name: defs: mergeDefinitions (loc ++ [ name ]) elemType defs) (pushPositions defs);
        in
        if lazy then mapAttrs (n: v: v.optionalValue.value or elemType.emptyValue.value or v.mergedValue) evals
        else mapAttrs (n: v: v.optionalValue.value) (filterAttrs (n: v: v.optionalValue ? value) evals);
      emptyValue = { value = { }; };
      getSubOptions = prefix: elemType.getSubOptions (prefix ++ [ "<name>" ]);
      getSubModules = elemType.getSubModules;
      nestedTypes.elemType = elemType;
    };

  # types.nix:1212 nullOr: all null is null, none null merges as the
  # element type, a mix is an error.
  nullOr =
    elemType:
    mkOptionType {
      name = "nullOr";
      description = "null or ${phrase (c: c == "noun" || c == "conjunction") elemType}";
      descriptionClass = "conjunction";
      check = x: x == null || elemType.check x;
      merge =
        loc: defs:
        let
          nulls = filter (def: def.value == null) defs;
        in
        if nulls == [ ] then elemType.merge loc defs
        else if length nulls == length defs then null
        else throw "The option `${showOption loc}` is defined both null and not null, in ${lib.showFiles (lib.getFiles defs)}.";
      emptyValue = { value = null; };
      getSubOptions = elemType.getSubOptions;
      getSubModules = elemType.getSubModules;
      nestedTypes.elemType = elemType;
    };

  # types.nix:1275 submodule, :1366 submoduleWith: a nested evalModules of
  # the type's modules and one module per definition, with `name` the last
  # component of loc (:1453), at prefix loc. A freeform type of the modules
  # ("open submodule of ...", :1437) is in the description.
  submodule = modules: submoduleWith { shorthandOnlyDefinesConfig = true; modules = lib.toList modules; };
  submoduleWith =
    { modules, specialArgs ? { }, shorthandOnlyDefinesConfig ? false, description ? null }:
    let
      allModules = defs: map ({ value, file }:
        if isAttrs value && shorthandOnlyDefinesConfig then { _file = file; config = value; }
        else { _file = file; imports = [ value ]; }) defs;
      base = extra: prefix: lib.evalModules {
        inherit specialArgs prefix;
        modules = [ { _module.args.name = lib.mkOptionDefault "‹name›"; } ] ++ modules ++ extra;
      };
      freeformType = (base [ ] [ ])._module.freeformType;
    in
    mkOptionType {
      name = "submodule";
      description =
        if description != null then description
        else if freeformType != null then "open submodule of ${phrase (c: c == "noun" || c == "composite") freeformType}"
        else "submodule";
      check = x: isAttrs x || isFunction x || path.check x;
      merge = loc: defs: (base ([ { _module.args.name = last loc; } ] ++ allModules defs) loc).config;
      emptyValue = { value = (base [ ] [ ]).config; };
      getSubOptions = prefix: (base [ { _module.check = false; } ] prefix).options;
      getSubModules = modules;
      nestedTypes = lib.optionalAttrs (freeformType != null) { inherit freeformType; };
    };

  # types.nix:1553 enum.
  enum =
    values:
    let
      show = v: if isString v then ''"${v}"'' else if isInt v then toString v else if isBool v then lib.boolToString v else "<${builtins.typeOf v}>";
    in
    mkOptionType {
      name = "enum";
      description =
        if values == [ ] then "impossible (empty enum)"
        else if length values == 1 then "value ${show (head values)} (singular enum)"
        else "one of ${lib.concatMapStringsSep ", " show values}";
      descriptionClass = if length values < 2 then "noun" else "conjunction";
      check = x: elem x values;
      merge = mergeEqualOption;
    };

  # types.nix:1602 serializableValueWith, :1623 json.
  serializableValueWith =
    { typeName, nullable ? true }:
    let
      baseType = oneOf [ bool int float str path (attrsOf valueType) (listOf valueType) ];
      valueType = (if nullable then nullOr baseType else baseType) // { description = "${typeName} value"; };
    in
    valueType;
  json = serializableValueWith { typeName = "JSON"; };

  # types.nix:1631 either: the first type all definitions fit merges them
  # (its merge checks what is below the head); when neither fits all,
  # nixpkgs 26.05 warns and keeps one definition (mergeOneOption), an error
  # from 26.11 on: an error here.
  either =
    t1: t2:
    mkOptionType {
      name = "either";
      description =
        if (t1.descriptionClass or null) == "nonRestrictiveClause" then
          "${t1.description}, or ${phrase (c: c == "noun" || c == "conjunction") t2}"
        else
          "${phrase (c: c == "noun" || c == "conjunction") t1} or ${phrase (c: c == "noun" || c == "conjunction" || c == "composite") t2}";
      descriptionClass = "conjunction";
      check = x: t1.check x || t2.check x;
      merge =
        loc: defs:
        if all (def: t1.check def.value) defs then t1.merge loc defs
        else if all (def: t2.check def.value) defs then t2.merge loc defs
        else throw "The option `${showOption loc}` is neither a value of type `${t1.description}` nor `${t2.description}`, Definition values: ${showDefs defs}";
      nestedTypes = { left = t1; right = t2; };
    };

  # types.nix:1719 oneOf.
  oneOf = ts: if ts == [ ] then throw "types.oneOf needs to get at least one type in its argument" else foldl' either (head ts) (tail ts);

  # types.nix:1806 addCheck: the type, with one more check on the head.
  addCheck = elemType: check: elemType // { check = x: elemType.check x && check x; };

  # types.nix:1189 uniq / :1191 unique: one definition only.
  uniq = type: type // { name = "unique"; merge = mergeOneOption; };
}
