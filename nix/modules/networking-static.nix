# networking-static.nix: the machine's addresses come from its claim, never
# from this repo (design D8). The claim's network block becomes the VM's
# Proxmox ipConfig/dns, Proxmox writes it to the cloud-init drive as
# network-config, and cloud-init renders it for systemd-networkd. This module
# makes NixOS leave the addressing to that config:
#   - networkd, no NixOS-generated DHCP on any interface (no fallback: an
#     interface the claim does not describe stays down);
#   - cloud-init re-applies network-config at every boot, not only on the
#     first boot of an instance, so a changed claim (new IP) takes effect on
#     the next reboot without touching Nix;
#   - the hostname is left to cloud-init as well (the claim's spec.hostname).
# The same module serves a DHCP claim (docker01): Proxmox then writes a
# dhcp4 subnet and networkd runs DHCP on that one interface.
{ config, lib, ... }:

let
  cfg = config.homelab.network;
in
{
  options.homelab.network = {
    fromCloudInit = lib.mkOption {
      type = lib.types.bool;
      # Off unless asked: importing the module (or nixosModules.default)
      # changes nothing; the lab's machines turn it on (flake.nix mkMachine).
      default = false;
      description = ''
        Take interface addressing, routes, DNS servers and the hostname from
        the cloud-init network config that Proxmox writes from the claim.
        Turn off only for a machine whose network is declared in Nix (then
        `labctl validate` cannot compare it with the claim).
      '';
    };

    applyEveryBoot = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        Re-apply the cloud-init network config at every boot (cloud-init's
        `updates.network.when = [boot]`), so the claim stays the single
        source of truth after the first boot too.
      '';
    };

    waitOnlineAnyInterface = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        network-online.target is reached when any interface is routable.
        VMs have one NIC; docker bridges and veths must not hold up boot.
      '';
    };
  };

  config = lib.mkIf cfg.fromCloudInit {
    networking.useNetworkd = true;
    networking.useDHCP = false;
    # Empty: cloud-init sets it from the claim (update_hostname).
    networking.hostName = lib.mkForce "";

    systemd.network.enable = true;
    systemd.network.wait-online.anyInterface = cfg.waitOnlineAnyInterface;

    services.cloud-init = {
      enable = true;
      network.enable = true;
      settings = lib.mkIf cfg.applyEveryBoot {
        updates.network.when = [ "boot" ];
      };
    };
  };
}
