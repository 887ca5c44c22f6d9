{
  description = "homelab-infra: NixOS machines on Proxmox, provisioned by Crossplane, converged from Git";

  # NixOS 26.05 (nixos-26.05), the newest stable release on 2026-11-25
  # (26.11 is not out yet). flake.lock pins rev b51242d7d436 with the
  # narHash a public flake.lock recorded for it (jecaro/circuix-sword,
  # flake.lock, node nixpkgs_2, original ref nixos-26.05, lastModified
  # 2026-05-31); nixpkgs cannot be fetched or hashed here. `nix flake
  # update` on a connected machine moves it along the branch.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs = { self, nixpkgs }:
    let
      # The lab's machines and its packages are built for x86_64 (Proxmox
      # guests); the packages also for aarch64. The modules use the
      # importing system's own pkgs, so nixosModules work on any
      # architecture.
      system = "x86_64-linux";
      systems = [ "x86_64-linux" "aarch64-linux" ];
      inherit (nixpkgs) lib;
      pkgs = nixpkgs.legacyPackages.${system};
      forSystems = f: lib.genAttrs systems (s: f nixpkgs.legacyPackages.${s});

      # One rule for which hosts exist, shared with the nixcheck tests that
      # compare it with `labctl validate` (a host = nix/hosts/<name>/configuration.nix).
      hostNames = import ./nix/lib/hosts.nix ./nix/hosts;

      # No per-commit version: see nix/pkgs/default.nix and sources.nix.
      goPackagesFor = pkgs: import ./nix/pkgs { inherit pkgs; src = self; };
      goPackages = goPackagesFor pkgs;

      # The lab's modules, each usable alone from other flakes.
      modules = {
        base = ./nix/modules/base.nix;
        networking-static = ./nix/modules/networking-static.nix;
        docker-host = ./nix/modules/docker-host.nix;
        dns-unbound = ./nix/modules/dns-unbound.nix;
        monitoring-agent = ./nix/modules/monitoring-agent.nix;
        nix-gitops = { lib, pkgs, ... }: {
          # The agent and its secrets from Vault: one module to import.
          imports = [ ./nix/modules/nix-gitops.nix ./nix/modules/nix-gitops-secrets.nix ];
          # Built with the importing system's pkgs: any architecture.
          services.nix-gitops.package = lib.mkDefault (goPackagesFor pkgs).nix-gitops;
        };
      };

      # Every machine, the template included, is a Proxmox guest with the
      # same disk layout and boot loader (proxmox-image.nix), so switching a
      # clone from the template to its host config keeps it bootable.
      mkMachine = config: mkMachineWith [ ] config;
      mkMachineWith = extra: config: lib.nixosSystem {
        inherit system;
        modules = extra ++ [
          "${nixpkgs}/nixos/modules/virtualisation/proxmox-image.nix"
          self.nixosModules.default
          # What the lab's machines turn on; importing nixosModules.default
          # elsewhere turns on nothing by itself.
          {
            services.nix-gitops.enable = lib.mkDefault true;
            homelab.network.fromCloudInit = lib.mkDefault true;
            homelab.monitoring.enable = lib.mkDefault true;
            # proxmox-image.nix sets no boot menu (boot.loader.timeout = 0);
            # the menu's older generations are the safety net when a
            # generation cannot boot, so keep it reachable (seconds).
            boot.loader.timeout = lib.mkForce 5;
          }
          config
        ];
      };
    in
    assert lib.assertMsg (!(builtins.elem "template" hostNames))
      "nix/hosts/template: the name \"template\" is taken by the Proxmox template; rename the host";
    {
      nixosModules = modules // {
        default = { imports = builtins.attrValues modules; };
      };

      nixosConfigurations =
        lib.genAttrs hostNames (name: mkMachine ./nix/hosts/${name}/configuration.nix)
        // {
          # The template records the commit it was built from: a first boot
          # (no agent state yet) never applies an older commit than that
          # (the floor, see the README's design note). Only the template's
          # toplevel carries a commit; the hosts' carry none.
          template = mkMachineWith [ { services.nix-gitops.floorCommit = self.rev or null; } ] ./nix/template/configuration.nix;
        };

      packages = forSystems (p: {
        inherit (goPackagesFor p) nix-gitops function-machine crossplane-cli;
        default = (goPackagesFor p).nix-gitops;
      }) // {
        ${system} = {
          inherit (goPackages) nix-gitops function-machine crossplane-cli;
          # nixpkgs' Proxmox image support: a VMA (vzdump) archive for qmrestore.
          proxmox-template = self.nixosConfigurations.template.config.system.build.VMA;
          default = goPackages.nix-gitops;
        };
      };

      checks.${system} =
        {
          # Boots a NixOS VM with the agent: converge from a Git repo in the
          # VM, roll back on a failing health check, refuse a force-push.
          agent-vm = import ./nix/tests/agent.nix { inherit pkgs self; };
          inherit (goPackages) nix-gitops function-machine;
        }
        // lib.mapAttrs' (name: machine: lib.nameValuePair "toplevel-${name}" machine.config.system.build.toplevel)
          self.nixosConfigurations;

      devShells.${system}.default = pkgs.mkShell {
        packages = [
          (pkgs.go_1_26 or pkgs.go)
          pkgs.gopls
          pkgs.git
          pkgs.gnumake
          pkgs.nix
          pkgs.kubectl
          pkgs.qemu
          pkgs.xorriso
          pkgs.jq
          goPackages.crossplane-cli
        ];
      };
    };
}
