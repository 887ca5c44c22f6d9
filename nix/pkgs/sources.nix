# The source each Go package is built from: exactly the files its build and
# tests read, not the whole repository. A commit that changes nothing of
# these (a README, a claim, another host, the control plane's code) gives
# nix-gitops the same source, hence the same store path, and leaves every
# host's toplevel as it was: the agent then builds the running system and
# switches nothing.
#
# buildGoModule runs the tests of cmd/nix-gitops only (subPackages), so the
# packages it imports come without their own _test.go files (which would
# pull their test dependencies into `go mod vendor`). internal/nixcheck
# checks that this covers every package of the module that
# `go list -deps -test ./cmd/nix-gitops` names, and that two commits
# differing only outside it give the same source path.
#
# Plain builtins (builtins.path with a filter), no nixpkgs lib: the tests
# evaluate this very file with real nix.
_:

let
  root = ../..;
  # Whole folders, tests included.
  whole = [ "cmd/nix-gitops" ];
  # Folders whose _test.go files stay out.
  noTests = [
    "internal/agent"
    "internal/backoff"
    "internal/flakeref"
    # The secrets stage: the Vault client, the claim's secret model, files.
    "internal/machine"
    "internal/securefile"
    "internal/vault"
    # Imported by nix-gitops' tests.
    "internal/testenv"
    "internal/testflake"
    "internal/vaulttest"
  ];
  prefix = toString root + "/";
  rel = path: builtins.substring (builtins.stringLength prefix) (-1) (toString path);
  hasPrefix = p: s: builtins.substring 0 (builtins.stringLength p) s == p;
  under = dir: r: r == dir || hasPrefix (dir + "/") r;
  isTest = r: builtins.match ".*_test\\.go" r != null;
  keep = path: type:
    let
      r = rel path;
    in
    r == "go.mod" || r == "go.sum"
    || builtins.any (d: under d r) whole
    || builtins.any (d: under d r && (type == "directory" || !isTest r)) noTests
    # the folders on the way down to them
    || type == "directory" && builtins.any (d: hasPrefix (r + "/") d) (whole ++ noTests);
in
{
  nix-gitops = builtins.path {
    name = "source";
    path = root;
    filter = keep;
  };
}
