# The repo's Go programs, built with nixpkgs' buildGoModule.
#
# vendorHash is the NAR hash of what `go mod vendor` produces for a module's
# source. It lives in vendor-hashes.json, keyed by source, which
# internal/nixcheck recomputes offline (go mod vendor from the module cache,
# then `nix hash path`) on every `make test`: a changed dependency fails the
# test until `make nix-vendor-hash` rewrites the file.
#
# The version is fixed, not the commit: a version that changes with every
# commit would change the agent's store path, and so every host's toplevel,
# for a README edit. `nix-gitops status` names the applied commit instead.
{ pkgs, src }:

let
  hashes = builtins.fromJSON (builtins.readFile ./vendor-hashes.json);
  sources = import ./sources.nix { };
  version = "0.1.0";
  # go.mod asks for Go >= 1.25.11 (the tools module for 1.26), newer than
  # some 26.05 go_1_25 points may be: build with Go 1.26 when nixpkgs has it.
  buildGo = pkgs.buildGo126Module or pkgs.buildGoModule;

  fromMainModule = { pname, subPackage, src, vendorHash }: buildGo {
    inherit pname version src vendorHash;
    subPackages = [ subPackage ];
    env.CGO_ENABLED = 0;
    # nix-gitops prints it (`nix-gitops version`).
    ldflags = [ "-s" "-w" "-X main.version=${version}" ];
    # The sandbox has no git, nix or control plane; their tests skip under
    # -short and run in `make test` instead.
    checkFlags = [ "-short" ];
    meta.mainProgram = pname;
  };
in
{
  # Part of every host's closure: built from its own files only.
  nix-gitops = fromMainModule {
    pname = "nix-gitops";
    subPackage = "cmd/nix-gitops";
    src = sources.nix-gitops;
    vendorHash = hashes.nix-gitops;
  };
  # Runs in the cluster, in no host's closure: the whole tracked tree.
  function-machine = fromMainModule {
    pname = "function-machine";
    subPackage = "cmd/function-machine";
    inherit src;
    vendorHash = hashes.main;
  };

  # The crossplane CLI at the version the render tests pin
  # (hack/tools/crossplane/go.mod: a `tool` of that module).
  crossplane-cli = buildGo {
    pname = "crossplane-cli";
    version = "2.5.0";
    src = ../../hack/tools/crossplane;
    vendorHash = hashes."hack/tools/crossplane";
    env.CGO_ENABLED = 0;
    buildPhase = ''
      runHook preBuild
      go build -trimpath -ldflags "-s -w" -o crossplane github.com/crossplane/cli/v2/cmd/crossplane
      runHook postBuild
    '';
    installPhase = ''
      runHook preInstall
      install -Dm755 crossplane $out/bin/crossplane
      runHook postInstall
    '';
    doCheck = false;
    meta.mainProgram = "crossplane";
  };
}
