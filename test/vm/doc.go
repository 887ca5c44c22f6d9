// Package vm is the VM end-to-end suite (build tag vm; `make vm-e2e`): an
// example claim's cloud-init boots a real guest under QEMU (TCG) that
// converges itself from a git repo served on host loopback.
//
// What is real: QEMU, the Debian cloud kernel, systemd, cloud-init 25.x
// reading a NoCloud seed, Nix 2.26, git, our nix-gitops binary and its units.
// What stands in (named as such): the guest is a Debian trixie stand-in for
// the NixOS template (hack/vm-image.sh; nixpkgs cannot be fetched here), the
// flake is internal/testflake's builtins-only stand-in toplevel, and the
// Proxmox host is replaced by internal/nocloud writing the drive Proxmox
// would write.
package vm
