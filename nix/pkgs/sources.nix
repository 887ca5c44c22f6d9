# The source each Go package is built from: a lib.fileset of exactly the
# files its build and tests read, not the whole repository. A commit that
# changes nothing of these (a README, a claim, another host, the control
# plane's code) gives nix-gitops the same source, hence the same store path,
# and leaves every host's toplevel as it was: the agent then builds the
# running system and switches nothing.
#
# buildGoModule runs the tests of cmd/nix-gitops only (subPackages), so the
# packages it imports come without their own _test.go files (which would
# pull their test dependencies into `go mod vendor`). internal/nixcheck
# checks that this covers every package of the module that
# `go list -deps -test ./cmd/nix-gitops` names, and that two commits
# differing only outside it give the same source path.
{ lib }:

let
  fs = lib.fileset;
  root = ../..;
  noTests = dir: fs.fileFilter (f: !lib.hasSuffix "_test.go" f.name) dir;
in
{
  nix-gitops = fs.toSource {
    inherit root;
    fileset = fs.unions ([
      ../../go.mod
      ../../go.sum
      ../../cmd/nix-gitops
    ] ++ map noTests [
      ../../internal/agent
      ../../internal/backoff
      ../../internal/flakeref
      # The secrets stage: the Vault client, the claim's secret model, files.
      ../../internal/machine
      ../../internal/securefile
      ../../internal/vault
      # Imported by nix-gitops' tests.
      ../../internal/testenv
      ../../internal/testflake
      ../../internal/vaulttest
    ]);
  };
}
