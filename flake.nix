{
  description = "homelab-infra: NixOS machines on Proxmox, provisioned by Crossplane, converged from Git";

  # Skeleton: the outputs are filled in by issue 4 (hosts, template, packages, checks).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs = { self, nixpkgs }:
    let
      hostNames = import ./nix/lib/hosts.nix ./nix/hosts;
    in
    {
      nixosConfigurations = builtins.listToAttrs (map
        (name: {
          inherit name;
          value = nixpkgs.lib.nixosSystem {
            system = "x86_64-linux";
            modules = [ ./nix/hosts/${name}/configuration.nix { networking.hostName = name; } ];
          };
        })
        hostNames);
    };
}
