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
      system = "x86_64-linux";
      inherit (nixpkgs) lib;
      pkgs = nixpkgs.legacyPackages.${system};

      # One rule for which hosts exist, shared with the nixcheck tests that
      # compare it with `labctl validate` (a host = nix/hosts/<name>/configuration.nix).
      hostNames = import ./nix/lib/hosts.nix ./nix/hosts;

      goPackages = import ./nix/pkgs {
        inherit pkgs;
        src = self;
        version = self.shortRev or self.dirtyShortRev or "dirty";
      };

      # The lab's modules, each usable alone from other flakes.
      modules = {
        base = ./nix/modules/base.nix;
        networking-static = ./nix/modules/networking-static.nix;
        docker-host = ./nix/modules/docker-host.nix;
        dns-unbound = ./nix/modules/dns-unbound.nix;
        monitoring-agent = ./nix/modules/monitoring-agent.nix;
        nix-gitops = { lib, ... }: {
          imports = [ ./nix/modules/nix-gitops.nix ];
          services.nix-gitops.package = lib.mkDefault self.packages.${system}.nix-gitops;
        };
      };

      # Every machine, the template included, is a Proxmox guest with the
      # same disk layout and boot loader (proxmox-image.nix), so switching a
      # clone from the template to its host config keeps it bootable.
      mkMachine = config: lib.nixosSystem {
        inherit system;
        modules = [
          "${nixpkgs}/nixos/modules/virtualisation/proxmox-image.nix"
          self.nixosModules.default
          { services.nix-gitops.enable = lib.mkDefault true; }
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
        // { template = mkMachine ./nix/template/configuration.nix; };

      packages.${system} = {
        inherit (goPackages) nix-gitops function-machine crossplane-cli;
        # nixpkgs' Proxmox image support: a VMA (vzdump) archive for qmrestore.
        proxmox-template = self.nixosConfigurations.template.config.system.build.VMA;
        default = goPackages.nix-gitops;
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
