# docker01: a Docker host (claim: crossplane/claims/docker01.yaml, DHCP).
{ ... }:
{
  homelab.role = "docker";
  homelab.docker.enable = true;

  system.stateVersion = "26.05";
}
