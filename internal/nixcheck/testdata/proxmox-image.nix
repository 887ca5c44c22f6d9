# A STAND-IN for nixpkgs' nixos/modules/virtualisation/proxmox-image.nix
# (named as such; the flake imports the real one, which is not in NixOS's
# default module list and so not in the option data). Its options are in
# nixos-options-missing.json; this module holds what that module does that
# our template and machines depend on, as read (with the code search tools)
# at Swarsel/nixpkgs 4aa6836a648ca76c68866decf0c8965e36ec2a3b, the newest
# stored copy of the file (the index has no NixOS/nixpkgs copy of the
# 26.05 line; the pinned b51242d7 is not stored):
#   - imports: mkRenamedOptionModuleWith { sinceRelease = 2411; from =
#     [ "proxmox" "qemuConf" "diskSize" ]; to = [ "virtualisation"
#     "diskSize" ]; } (and ./disk-size-option.nix, which declares
#     virtualisation.diskSize: in the option data);
#   - config: boot.loader.timeout = 0; with cloudInit.enable,
#     networking.hostName = mkForce "" and networking.useDHCP = false,
#     services.cloud-init.enable and .network.enable = true;
#     services.qemuGuest.enable = true; services.sshd.enable = mkDefault true.
{ config, lib, options, ... }:

let
  cfg = config.proxmox;
  # modules.nix:1756 mkRenamedOptionModuleWith -> doRename (:1959): the old
  # option is declared (invisible), and its definitions, with their
  # priority, become the new option's; using it warns.
  from = options.proxmox.qemuConf.diskSize;
in
{
  options.proxmox.qemuConf.diskSize = lib.mkOption {
    visible = false;
    description = "Alias of {option}`virtualisation.diskSize`.";
  };

  config = {
    virtualisation.diskSize = lib.mkAliasAndWrapDefsWithPriority lib.id from;
    warnings = lib.optional from.isDefined
      "The option `proxmox.qemuConf.diskSize' defined in ${lib.showFiles from.files} has been renamed to `virtualisation.diskSize'.";

    boot.loader.timeout = 0;
    networking = lib.mkIf cfg.cloudInit.enable {
      hostName = lib.mkForce "";
      useDHCP = false;
    };
    services = {
      cloud-init = lib.mkIf cfg.cloudInit.enable {
        enable = true;
        network.enable = true;
      };
      sshd.enable = lib.mkDefault true;
      qemuGuest.enable = true;
    };
  };
}
