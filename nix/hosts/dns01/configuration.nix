# dns01: the lab's recursive resolver (claim: crossplane/claims/dns01.yaml).
# Its static address lives only in the claim; cloud-init hands it to NixOS (D8).
{ ... }:
{
  homelab.role = "dns";
  homelab.dns.enable = true;

  system.stateVersion = "26.05";
}
