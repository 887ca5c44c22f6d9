# The module system: evalModules and the properties (mkIf, mkMerge,
# mkOverride, mkOrder), as nixpkgs' lib/modules.nix defines them (lines at
# the commit named in default.nix).
lib:
let
  inherit (lib)
    all
    any
    attrNames
    concatLists
    concatMap
    filter
    filterAttrs
    foldl'
    head
    imap1
    isAttrs
    isBool
    isFunction
    isList
    isOption
    length
    mapAttrs
    mapAttrsToList
    mkOption
    optionalAttrs
    reverseList
    setAttrByPath
    showDefs
    showOption
    types
    zipAttrs
    zipAttrsWith
    ;
in
rec {
  # modules.nix:92 evalModules. Kept: modules, prefix, specialArgs; the
  # internal module's _module.args, _module.check, _module.freeformType
  # (:146-:235); collecting imports (:259, :414); merging (:275); the
  # freeform config (:281-:302); the unmatched-definition error (:304-:382).
  evalModules =
    { modules, prefix ? [ ], specialArgs ? { } }:
    let
      internalModule = {
        _file = "lib/modules.nix";
        key = "lib/modules.nix";
        options._module = {
          args = mkOption { type = types.lazyAttrsOf types.raw; };
          check = mkOption { type = types.bool; default = true; };
          freeformType = mkOption { type = types.nullOr types.raw; default = null; };
        };
      };
      # modules.nix:259-:273 doCollect: what every module is called with.
      args = { inherit lib options config specialArgs; } // specialArgs;
      collected = collectModules (modules ++ [ internalModule ]) args;
      # modules.nix:275: merged in reverse order of collection.
      merged = mergeModules prefix (reverseList collected);
      options = merged.matchedOptions;
      declaredConfig = lib.mapAttrsRecursiveCond (v: !isOption v) (_: v: v.value) options;
      freeformType = declaredConfig._module.freeformType;
      config =
        if freeformType == null then declaredConfig
        else
          let
            defs = map (def: { inherit (def) file; value = setAttrByPath def.prefix def.value; }) merged.unmatchedDefns;
          in
          lib.recursiveUpdate (if defs == [ ] then { } else freeformType.merge prefix defs) declaredConfig;
      checkUnmatched =
        if config._module.check && freeformType == null && merged.unmatchedDefns != [ ] then
          let
            firstDef = head merged.unmatchedDefns;
          in
          throw "The option `${showOption (prefix ++ firstDef.prefix)}' does not exist. Definition values:${showDefs [ firstDef ]}"
        else null;
      checked = builtins.seq checkUnmatched;
    in
    {
      _type = "configuration";
      options = checked options;
      config = checked (removeAttrs config [ "_module" ]);
      _module = checked config._module;
    };

  # modules.nix:414 collectModules: every module and what it imports, once
  # per key (genericClosure), in the order found.
  collectModules =
    initialModules: args:
    let
      # modules.nix:419 loadModule.
      loadModule =
        fallbackFile: fallbackKey: m:
        if isFunction m then unifyModuleSyntax fallbackFile fallbackKey (applyModuleArgs fallbackKey m args)
        else if isAttrs m then
          if (m._type or "module") == "module" then unifyModuleSyntax fallbackFile fallbackKey m
          else if m._type == "if" || m._type == "override" then loadModule fallbackFile fallbackKey { config = m; }
          else throw "modlib: `${fallbackKey}' is a ${m._type}, not a module"
        else if isList m then throw "Module imports can't be nested lists. Perhaps you meant to remove one level of lists? In ${fallbackFile}"
        else
          let
            f = import m;
          in
          unifyModuleSyntax (toString m) (toString m) (if isFunction f then applyModuleArgs (toString m) f args else f);
      # modules.nix:524 collectStructuredModules.
      structured =
        parentFile: parentKey: ms:
        imap1 (n: x:
          let
            module = loadModule parentFile "${parentKey}:anon-${toString n}" x;
          in
          {
            inherit (module) key;
            inherit module;
            modules = structured module._file module.key module.imports;
          }) ms;
    in
    # modules.nix:564 filterModules.
    map (s: s.module) (builtins.genericClosure {
      startSet = structured "<unknown-file>" "" initialModules;
      operator = s: s.modules;
    });

  # modules.nix:634 unifyModuleSyntax: { _file, key, imports, options, config }.
  unifyModuleSyntax =
    file: key: m:
    let
      addFreeformType = config: if m ? freeformType then mkMerge [ config { _module.freeformType = m.freeformType; } ] else config;
    in
    if m ? config || m ? options then
      let
        badAttrs = removeAttrs m [ "_class" "_file" "key" "disabledModules" "imports" "options" "config" "meta" "freeformType" ];
      in
      if badAttrs != { } then
        throw "Module `${key}' has an unsupported attribute `${head (attrNames badAttrs)}'. This is caused by introducing a top-level `config' or `options' attribute. Add configuration attributes immediately on the top level instead, or move all of them (namely: ${toString (attrNames badAttrs)}) into the explicit `config' attribute."
      else
        {
          _file = toString (m._file or file);
          key = toString (m.key or key);
          imports = m.imports or [ ];
          options = m.options or { };
          config = addFreeformType (m.config or { });
        }
    else
      {
        _file = toString (m._file or file);
        key = toString (m.key or key);
        imports = m.require or [ ] ++ m.imports or [ ];
        options = { };
        config = addFreeformType (removeAttrs m [ "_class" "_file" "key" "disabledModules" "require" "imports" "freeformType" ]);
      };

  # modules.nix:707 applyModuleArgs: the arguments a function module names
  # come from the evaluation's args, else from config._module.args.
  applyModuleArgs =
    key: f: args:
    let
      extraArgs = mapAttrs (name: _:
        builtins.addErrorContext "while evaluating the module argument `${name}' in \"${key}\":"
          (args.${name} or args.config._module.args.${name})) (lib.functionArgs f);
    in
    f (args // extraArgs);

  # modules.nix:773 mergeModules.
  mergeModules =
    prefix: modules:
    mergeModules' prefix modules
      (concatMap (m: map (config: { file = m._file; inherit config; }) (pushDownProperties m.config)) modules);

  # modules.nix:785 mergeModules': per attribute name, the declarations and
  # definitions below it; an option where every declaration is one, a
  # recursion where none is.
  mergeModules' =
    prefix: modules: configs:
    let
      declsByName = zipAttrs (map (module:
        if !(isAttrs module.options) then
          throw "An option declaration for `${builtins.concatStringsSep "." prefix}' has type `${builtins.typeOf module.options}' rather than an attribute set."
        else mapAttrs (n: option: { inherit (module) _file; options = option; }) module.options) modules);
      # modules.nix:811: the root of a definition must be an attribute set.
      checkedConfigs = map (c:
        if isAttrs c.config then c
        else throw "In module `${c.file}', you're trying to define a value of type `${builtins.typeOf c.config}' rather than an attribute set for the option `${builtins.concatStringsSep "." prefix}'!") configs;
      pushedDownDefinitionsByName = zipAttrsWith (n: concatLists) (map (module:
        mapAttrs (n: value: map (config: { inherit (module) file; inherit config; }) (pushDownProperties value)) module.config) checkedConfigs);
      rawDefinitionsByName = zipAttrs (map (module:
        mapAttrs (n: value: { inherit (module) file; inherit value; }) module.config) checkedConfigs);
      resultsByName = mapAttrs (name: decls:
        let
          loc = prefix ++ [ name ];
          defns = pushedDownDefinitionsByName.${name} or [ ];
          defns' = rawDefinitionsByName.${name} or [ ];
          optionDecls = filter (m: isOption m.options) decls;
        in
        if length optionDecls == length decls then
          {
            matchedOptions = evalOptionValue loc (mergeOptionDecls loc decls) defns';
            unmatchedDefns = [ ];
          }
        else if optionDecls != [ ] then
          # modules.nix:918: kept only as the error (no submodule options
          # declared beside their parent here).
          throw "The option `${showOption loc}' in module `${(head optionDecls)._file}' would be a parent of options declared elsewhere, but its type `${(head optionDecls).options.type.description or "<no description>"}' does not support nested options."
        else mergeModules' loc decls defns) declsByName;
      matchedOptions = mapAttrs (n: v: v.matchedOptions) resultsByName;
      unmatchedDefnsByName =
        mapAttrs (n: v: v.unmatchedDefns) resultsByName // removeAttrs rawDefinitionsByName (attrNames matchedOptions);
    in
    {
      inherit matchedOptions;
      unmatchedDefns =
        if configs == [ ] then [ ]
        else concatLists (mapAttrsToList (name: defs: map (def: def // { prefix = [ name ] ++ (def.prefix or [ ]); }) defs) unmatchedDefnsByName);
    };

  # modules.nix:1010 mergeOptionDecls, for one declaration (two of the same
  # option are an error here: our Nix declares each once, and the NixOS
  # stand-in declares each once from the option data).
  mergeOptionDecls =
    loc: decls:
    if length decls > 1 then
      throw "The option `${showOption loc}' in `${(lib.last decls)._file}' is already declared in `${(head decls)._file}'."
    else
      let
        d = head decls;
      in
      # modules.nix:1470 fixupOptionType: no type means unspecified.
      d.options // { inherit loc; declarations = [ d._file ]; type = d.options.type or types.unspecified; };

  # modules.nix:1100 evalOptionValue: the default is a definition of
  # priority 1500 (mkOptionDefault), then everything merges by type;
  # `apply` maps the merged value.
  evalOptionValue =
    loc: opt: defs:
    let
      defs' = (if opt ? default then [ { file = head opt.declarations; value = mkOptionDefault opt.default; } ] else [ ]) ++ defs;
      res =
        if (opt.readOnly or false) == true && length defs' > 1 then
          throw "The option `${showOption loc}' is read-only, but it's set multiple times. Definition values:${showDefs defs'}"
        else mergeDefinitions loc opt.type defs';
      value = if (opt.apply or null) != null then opt.apply res.mergedValue else res.mergedValue;
    in
    opt // {
      value = builtins.addErrorContext "while evaluating the option `${showOption loc}':" value;
      inherit (res.defsFinal') highestPrio;
      definitions = map (def: def.value) res.defsFinal;
      files = map (def: def.file) res.defsFinal;
      definitionsWithLocations = res.defsFinal;
      inherit (res) isDefined;
      __toString = _: showOption loc;
    };

  # modules.nix:1185 mergeDefinitions: discharge mkMerge/mkIf, keep the
  # highest priority (mkOverride), sort by mkOrder, check every remaining
  # definition against the type, then merge. With none left: the type's
  # empty value, else "accessed but has no value".
  mergeDefinitions = loc: type: defs: rec {
    defsFinal' =
      let
        defsNormalized = concatMap (m:
          map (value: { inherit (m) file; inherit value; })
            (builtins.addErrorContext "while evaluating definitions from `${toString m.file}':" (dischargeProperties m.value))) defs;
        defsFiltered = filterOverrides' defsNormalized;
        defsSorted =
          if any (def: (def.value._type or "") == "order") defsFiltered.values then sortProperties defsFiltered.values
          else defsFiltered.values;
      in
      { values = defsSorted; inherit (defsFiltered) highestPrio; };
    defsFinal = defsFinal'.values;
    mergedValue =
      if isDefined then
        if all (def: type.check def.value) defsFinal then type.merge loc defsFinal
        else
          let
            allInvalid = filter (def: !type.check def.value) defsFinal;
          in
          throw "A definition for option `${showOption loc}' is not of type `${type.description}'. Definition values:${showDefs allInvalid}"
      else if type.emptyValue ? value then type.emptyValue.value
      else throw "The option `${showOption loc}' was accessed but has no value defined. Try setting the option.";
    isDefined = defsFinal != [ ];
    optionalValue = if isDefined then { value = mergedValue; } else { };
  };

  # modules.nix:1335 pushDownProperties: mkMerge splits, mkIf and mkOverride
  # move down onto each attribute, so a condition is only forced when an
  # option below it is.
  pushDownProperties =
    cfg:
    let
      mapAttrsIfAttrs = f: val: if isAttrs val then mapAttrs f val else val;
    in
    if (cfg._type or "") == "merge" then concatMap pushDownProperties cfg.contents
    else if (cfg._type or "") == "if" then map (mapAttrsIfAttrs (n: v: mkIf cfg.condition v)) (pushDownProperties cfg.content)
    else if (cfg._type or "") == "override" then map (mapAttrsIfAttrs (n: v: mkOverride cfg.priority v)) (pushDownProperties cfg.content)
    else [ cfg ];

  # modules.nix:1375 dischargeProperties: where mkIf conditions are forced.
  dischargeProperties =
    def:
    if (def._type or "") == "merge" then concatMap dischargeProperties def.contents
    else if (def._type or "") == "if" then
      if isBool def.condition then (if def.condition then dischargeProperties def.content else [ ])
      else throw "‘mkIf’ called with a non-Boolean condition"
    else [ def ];

  # modules.nix:1415 filterOverrides': only the definitions of the highest
  # priority (lowest number; 100 without mkOverride) remain.
  filterOverrides' =
    defs:
    let
      getPrio = def: if (def.value._type or "") == "override" then def.value.priority else defaultOverridePriority;
      strip = def: if (def.value._type or "") == "override" then def // { value = def.value.content; } else def;
      highestPrio = foldl' (prio: def: lib.min (getPrio def) prio) 9999 defs;
    in
    {
      values = concatMap (def: if getPrio def == highestPrio then [ (strip def) ] else [ ]) defs;
      inherit highestPrio;
    };
  filterOverrides = defs: (filterOverrides' defs).values;

  # modules.nix:1449 sortProperties: by mkOrder priority, 1000 without.
  sortProperties =
    defs:
    let
      strip = def: if (def.value._type or "") == "order" then def // { value = def.value.content; inherit (def.value) priority; } else def;
    in
    builtins.sort (a: b: (a.priority or defaultOrderPriority) < (b.priority or defaultOrderPriority)) (map strip defs);

  # modules.nix:1543-:1605, the properties.
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };
  mkOverride = priority: content: { _type = "override"; inherit priority content; };
  mkOptionDefault = mkOverride 1500;
  mkDefault = mkOverride 1000;
  defaultOverridePriority = 100;
  mkForce = mkOverride 50;
  mkVMOverride = mkOverride 10;
  mkOrder = priority: content: { _type = "order"; inherit priority content; };
  mkBefore = mkOrder 500;
  defaultOrderPriority = 1000;
  mkAfter = mkOrder 1500;

  # modules.nix:1626 mkAliasDefinitions, and the definitions with
  # their priority (:1633), which doRename (:1959) forwards a renamed
  # option's definitions with.
  mkAliasDefinitions = option: mkIf option.isDefined (mkMerge option.definitions);
  mkAliasAndWrapDefsWithPriority =
    wrap: option:
    let
      prio = option.highestPrio or defaultOverridePriority;
      defsWithPrio = map (mkOverride prio) option.definitions;
    in
    mkIf option.isDefined (wrap (mkMerge defsWithPrio));
}
