# A STAND-IN for nixpkgs' NixOS modules (named as such; nixpkgs cannot be
# fetched here): every NixOS option declared from NixOS's published option
# data, with the type its description names (internal/nixcheck/optiondata.go
# reads the data, typedesc.go the descriptions) and its default where the
# data gives it as a literal. It declares; it implements nothing. The
# modules evaluated beside it are ours, with modlib (../modlib) as lib.
#
# Arguments: lib (modlib), tree (OptionTree's JSON, decoded).
# Result: { module, pkgs }: the declarations as a module, and a stand-in
# package set (names with store-like paths) for _module.args.pkgs.
{ lib, tree }:

let
  inherit (lib) mkOption types;

  fakePkg = name: {
    type = "derivation";
    inherit name;
    pname = name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    meta.mainProgram = name;
  };
  # What our Nix takes from pkgs: packages by name, and the builders of
  # nix/pkgs, as derivations that record their arguments.
  pkgs = {
    inherit lib;
    git = fakePkg "git";
    openssh = fakePkg "openssh";
    gnupg = fakePkg "gnupg";
    coreutils = fakePkg "coreutils";
    nix = fakePkg "nix";
    systemd = fakePkg "systemd";
    # The script is kept, so a test can read what a package is built from.
    runCommand = name: env: script: fakePkg name // { inherit script; };
    writeShellScript = name: text: fakePkg name;
    buildGoModule = args: fakePkg args.pname // { inherit args; };
  };

  # nixos/lib/systemd-unit-options.nix unitOption: any value; list values
  # concatenate, others must agree.
  systemdOption = types.mkOptionType {
    name = "systemd option";
    merge = loc: defs:
      if lib.any (def: builtins.isList def.value) defs then lib.concatMap (def: lib.toList def.value) defs
      else lib.mergeEqualOption loc defs;
  };
  # nixos/modules/config/sysctl.nix sysctlOption.
  sysctlValue = types.mkOptionType {
    name = "sysctl option value";
    check = x: builtins.isBool x || builtins.isString x || builtins.isInt x || x == null;
    merge = loc: defs: lib.mergeOneOption loc defs;
  };
  # nixos/modules/services/networking/unbound.nix: the settings' freeform
  # type (attrsOf of one value, a list of values or an attribute set).
  unboundSettings =
    let
      prim = types.oneOf [ types.int types.str types.bool types.float ];
      valid = types.oneOf [ prim (types.listOf prim) ];
      section = types.oneOf [ types.str (types.attrsOf valid) ];
    in
    types.attrsOf (types.oneOf [ section (types.listOf section) ]);

  mkType = loc: t: {
    bool = types.bool;
    str = types.str;
    int = types.int;
    float = types.float;
    package = types.package;
    path = types.path;
    attrs = types.attrs;
    anything = types.anything;
    raw = types.raw;
    null = types.mkOptionType { name = "null"; check = x: x == null; merge = lib.mergeEqualOption; };
    nonEmptyStr = types.nonEmptyStr;
    positive = types.ints.positive;
    unsigned = types.ints.unsigned;
    json = types.json;
    singleLineStr = types.singleLineStr;
    passwdStr = types.passwdEntry types.str;
    inherit systemdOption sysctlValue unboundSettings;
    # nixos/modules/config/locale.nix time.timeZone: no spaces.
    noSpaceStr = types.addCheck types.str (s: !(lib.hasInfix " " s)) // { description = "string without spaces"; };
    # nixos/modules/config/nix.nix: the atoms of nix.settings.
    nixConfigAtom = types.nullOr (types.oneOf [ types.bool types.int types.float types.str types.path types.package ]);
    # nixos/modules/services/networking/ssh/sshd.nix: the atoms of
    # services.openssh.settings.
    sshdAtom = types.nullOr (types.oneOf [ types.bool types.int types.float types.str ]);
    intBetween = types.ints.between t.lo t.hi;
    strMatching = types.strMatching t.pattern;
    separatedString = types.separatedString t.sep;
    enum = types.enum t.values;
    nullOr = types.nullOr (mkType loc t.elem);
    passwdEntry = types.passwdEntry (mkType loc t.elem);
    listOf = types.listOf (mkType (loc ++ [ "*" ]) t.elem);
    nonEmptyListOf = types.addCheck (types.listOf (mkType (loc ++ [ "*" ]) t.elem)) (l: l != [ ]);
    attrsOf = types.attrsOf (mkType (loc ++ [ "<name>" ]) t.elem);
    lazyAttrsOf = types.lazyAttrsOf (mkType (loc ++ [ "<name>" ]) t.elem);
    either = types.either (mkType loc t.left) (mkType loc t.right);
    submodule = types.submoduleWith {
      shorthandOnlyDefinesConfig = true;
      modules = [
        ({ options = declare loc (t.options or { }); }
          // lib.optionalAttrs ((t.freeform or null) != null) { freeformType = mkType loc t.freeform; })
      ];
    };
    unknown = types.mkOptionType {
      name = "unknown";
      description = t.desc;
      check = x: throw "nixcheck: `${lib.showOption loc}' has the type `${t.desc}' in the option data, which internal/nixcheck/typedesc.go does not read: teach it that type";
    };
  }.${t.kind};

  # A package option whose default is an expression (pkgs.nix) gets a
  # stand-in package named after the option ("nix" for nix.package).
  standInDefault = loc: o:
    if o ? default then { inherit (o) default; }
    else if o.type.kind == "package" && builtins.length loc > 1 then { default = fakePkg (builtins.elemAt loc (builtins.length loc - 2)); }
    else { };

  declare = loc: node: builtins.mapAttrs (n: v:
    if v ? _option then
      mkOption ({
        type = mkType (loc ++ [ n ]) v._option.type;
        description = "NixOS option (stand-in declaration from ${v._option.source})";
      } // standInDefault (loc ++ [ n ]) v._option)
    else declare (loc ++ [ n ]) v) node;
in
{
  module = {
    _file = "internal/nixcheck/testdata/nixos.nix (NixOS option data)";
    options = declare [ ] tree;
    config._module.args = { inherit pkgs; modulesPath = "/stub/nixpkgs/nixos/modules"; };
  };
  inherit pkgs fakePkg;
}
