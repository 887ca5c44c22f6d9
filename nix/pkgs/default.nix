# The repo's Go programs, built with nixpkgs' buildGoModule.
#
# vendorHash is the NAR hash of what `go mod vendor` produces for a module.
# It lives in vendor-hashes.json, which internal/nixcheck recomputes offline
# (go mod vendor from the module cache, then `nix hash path`) on every
# `make test`: a changed dependency fails the test until
# `make nix-vendor-hash` rewrites the file.
{ pkgs, src, version }:

let
  hashes = builtins.fromJSON (builtins.readFile ./vendor-hashes.json);
  # go.mod asks for Go >= 1.25.11 (the tools module for 1.26), newer than
  # some 26.05 go_1_25 points may be: build with Go 1.26 when nixpkgs has it.
  buildGo = pkgs.buildGo126Module or pkgs.buildGoModule;

  fromMainModule = pname: subPackage: buildGo {
    inherit pname version src;
    vendorHash = hashes.main;
    subPackages = [ subPackage ];
    env.CGO_ENABLED = 0;
    # nix-gitops prints it (`nix-gitops version`); the flake passes its commit.
    ldflags = [ "-s" "-w" "-X main.version=${version}" ];
    # The sandbox has no git, nix or control plane; their tests skip under
    # -short and run in `make test` instead.
    checkFlags = [ "-short" ];
    meta.mainProgram = pname;
  };
in
{
  nix-gitops = fromMainModule "nix-gitops" "cmd/nix-gitops";
  function-machine = fromMainModule "function-machine" "cmd/function-machine";

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
