# The Proxmox template every Machine is cloned from (the seed's "NixOS VM
# template"): QEMU guest agent, SSH, cloud-init for user-data and network
# (D4, D8), and nix-gitops with its first-boot unit. It carries no host
# role: on first boot cloud-init writes /etc/nix-flake-target from the claim
# and starts nix-gitops-apply.service, which switches the clone to
# nix/hosts/<name>.
#
# The facts Proxmox must agree on (image name, template VM id, boot disk and
# its size) are in template.json; the nixcheck tests compare them with the
# Composition's function input, so `qmrestore` in the README restores it
# under the id the Composition clones, and the VM boots and grows the disk
# the template really has.
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
      # nixpkgs' image has one disk, virtio0. Name it in the boot order:
      # with none, Proxmox boots the first disk by bus (ide, scsi, virtio,
      # sata), and any scsi or sata disk added to a clone would come first.
      virtio0 = "${facts.storage}:vm-${toString facts.templateVmId}-disk-0";
      boot = facts.boot;
      # nixpkgs' default, stated: the Composition names the same controller
      # for every clone (a difference would be "changed" with a reboot when
      # the provider adopts a VM).
      scsihw = facts.scsiHardware;
    };
    # vzdump-qemu-<id>-<image>.vma.zst: qmrestore names the VM after it.
    filenameSuffix = "${toString facts.templateVmId}-${facts.image}";
    cloudInit = {
      enable = true;
      defaultStorage = facts.storage;
    };
  };

  # The image's disk, in MiB: "auto" or a positive integer since NixOS
  # 24.11, which moved it from proxmox.qemuConf.diskSize (nixpkgs'
  # proxmox-image.nix renames the old option, and a string there fails the
  # evaluation). A fixed size, so the Composition knows the smallest disk a
  # class may have; it leaves room for the first switch's build before the
  # clone's disk is grown (growpart and autoResize fill the class's size on
  # boot).
  virtualisation.diskSize = facts.diskGiB * 1024;

  homelab.role = "template";
  services.nix-gitops.enable = true;

  system.stateVersion = "26.05";
}
