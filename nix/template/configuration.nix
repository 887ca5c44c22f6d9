# The Proxmox template every Machine is cloned from (the seed's "NixOS VM
# template"): QEMU guest agent, SSH, cloud-init for user-data and network
# (D4, D8), and nix-gitops with its first-boot unit. It carries no host
# role: on first boot cloud-init writes /etc/nix-flake-target from the claim
# and starts nix-gitops-apply.service, which switches the clone to
# nix/hosts/<name>.
#
# The facts Proxmox must agree on (image name, template VM id) are in
# template.json; the nixcheck tests compare them with the Composition's
# function input, so `qmrestore` in the README restores it under the id the
# Composition clones.
{ lib, ... }:

let
  facts = builtins.fromJSON (builtins.readFile ./template.json);
in
{
  proxmox = {
    qemuConf = {
      name = "${facts.image}-template";
      cores = 2;
      memory = 2048;
      # Room for the first switch's build before the clone's disk is grown
      # (growpart and autoResize fill the class's disk size on boot).
      additionalSpace = "4096M";
    };
    # vzdump-qemu-<id>-<image>.vma.zst: qmrestore names the VM after it.
    filenameSuffix = "${toString facts.templateVmId}-${facts.image}";
    cloudInit = {
      enable = true;
      defaultStorage = facts.storage;
    };
  };

  homelab.role = "template";
  services.nix-gitops.enable = true;

  system.stateVersion = "26.05";
}
