// Package v1beta1 holds the provider's own configuration kinds:
// ProviderConfig (where the Proxmox credentials are) and ProviderConfigUsage.
// +kubebuilder:object:generate=true
// +groupName=proxmox.homelab.dev
// +versionName=v1beta1
package v1beta1
