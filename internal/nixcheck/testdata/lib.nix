# nixpkgs' real lib (../shared/nixpkgs-lib, unpacked by the test), as the
# nixcheck tests evaluate our Nix files with it. The Nix here (Debian's 2.8)
# lacks builtins.readFileType (Nix 2.14), which lib.fileset calls; this shim,
# a test stand-in named as such, answers it from builtins.readDir of the
# parent folder (the same file types) for lib and every file lib imports.
libDir:
let
  scope = {
    builtins = builtins // {
      readFileType = builtins.readFileType or (p: (builtins.readDir (dirOf p)).${baseNameOf p});
    };
    import = p: scopedImport scope p;
  };
in
scopedImport scope (libDir + "/lib")
