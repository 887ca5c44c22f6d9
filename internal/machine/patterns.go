package machine

import (
	"regexp"
	"sync"
)

// Patterns of the string fields. crossplane/xrd.yaml carries the same
// expressions (as `pattern` or in a CEL `matches`); TestXRDMatchesModel fails
// when the two differ, so they are written once here and checked there.
const (
	// LabelPattern is an RFC 1123 label (at most 63 characters): host
	// names, classes, roles, nodes.
	LabelPattern = `^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`
	// ImagePattern is a template identifier such as nixos-26.05.
	ImagePattern = `^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// DomainPattern is a DNS domain of RFC 1123 labels, each at most 63
	// characters (the whole at most MaxDomainLen).
	DomainPattern = `^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`
	// StoragePattern is a Proxmox storage (datastore) id.
	StoragePattern = `^[A-Za-z][A-Za-z0-9_.-]*$`
	// BridgePattern is a Linux interface name (at most 15 characters).
	BridgePattern = `^[A-Za-z][A-Za-z0-9_.-]{0,14}$`
	// UserPattern is a portable Linux user name.
	UserPattern = `^[a-z_][a-z0-9_-]{0,31}$`
	// TagPattern is a Proxmox tag.
	TagPattern = `^[a-z0-9][a-z0-9_.-]*$`
	// SecretNamePattern is a Kubernetes object name (DNS subdomain).
	SecretNamePattern = `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// SecretKeyPattern is a key of a Secret's data.
	SecretKeyPattern = `^[-._a-zA-Z0-9]+$`
	// VaultRolePattern is a Vault AppRole role name (Vault's
	// framework.GenericNameRegex: word characters, '-' and '.').
	VaultRolePattern = `^[A-Za-z0-9_]([-A-Za-z0-9_.]*[A-Za-z0-9_])?$`
	// DiskInterfacePattern is a Proxmox disk bus and index (qemu-server's
	// drive names).
	DiskInterfacePattern = `^(ide[0-3]|sata[0-5]|scsi([0-9]|[12][0-9]|30)|virtio([0-9]|1[0-5]))$`
)

// SCSIHardwareModels are the SCSI controller models Proxmox knows (the
// scsihw enum of PVE's qemu config API; test/proxmoxsim's
// TestSCSIHardwareIsTheSchemas checks it against the published schema).
var SCSIHardwareModels = []string{"lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi"}

// Limits shared with the XRD (checked by the same test).
const (
	MaxLabelLength = 63
	MaxDomainLen   = 253
	MinVMID        = 100
	MaxVMID        = 999999999
	MinVLAN        = 1
	MaxVLAN        = 4094
	MaxDNSServers  = 3
	MaxTags        = 16
	MaxSSHKeys     = 32
	MaxSSHKeyLen   = 2048
	MaxFlakeRefLen = 1024
	// MaxSecretKeyLen bounds a Secret key's name (a ConfigMap or Secret key).
	MaxSecretKeyLen = 253
	MinPrefixLen    = 8
	MaxPrefixLen    = 30
	// MaxVaultRoleLen bounds a Vault role name (the XRD's CEL cost too).
	MaxVaultRoleLen = 128
)

// Patterns maps each field path in the claim's spec to its pattern. "[]"
// stands for every item of a list.
var Patterns = map[string]string{
	"spec.class":                         LabelPattern,
	"spec.hostname":                      LabelPattern,
	"spec.domain":                        DomainPattern,
	"spec.image":                         ImagePattern,
	"spec.role":                          LabelPattern,
	"spec.tags[]":                        TagPattern,
	"spec.nix.flakeRef":                  FlakeRefPattern,
	"spec.proxmox.node":                  LabelPattern,
	"spec.proxmox.storage":               StoragePattern,
	"spec.proxmox.bridge":                BridgePattern,
	"spec.bootstrap.adminUser":           UserPattern,
	"spec.bootstrap.sshAuthorizedKeys[]": SSHKeyPattern,
	"spec.bootstrap.sshAuthorizedKeysSecretRef.name":      SecretNamePattern,
	"spec.bootstrap.sshAuthorizedKeysSecretRef.namespace": LabelPattern,
	"spec.bootstrap.sshAuthorizedKeysSecretRef.key":       SecretKeyPattern,
	"spec.secrets.role":                             VaultRolePattern,
	"spec.secrets.wrappingTokenSecretRef.name":      SecretNamePattern,
	"spec.secrets.wrappingTokenSecretRef.namespace": LabelPattern,
	"spec.secrets.wrappingTokenSecretRef.key":       SecretKeyPattern,
}

// The patterns compile on first use: nix-gitops links this package (through
// the Vault bootstrap's role check) and must not pay for fifteen regexps at
// every start of a daemon that never validates a claim.
var (
	labelRE      = lazyRE(LabelPattern)
	imageRE      = lazyRE(ImagePattern)
	domainRE     = lazyRE(DomainPattern)
	storageRE    = lazyRE(StoragePattern)
	bridgeRE     = lazyRE(BridgePattern)
	userRE       = lazyRE(UserPattern)
	sshKeyRE     = lazyRE(SSHKeyPattern)
	tagRE        = lazyRE(TagPattern)
	secretNameRE = lazyRE(SecretNamePattern)
	secretKeyRE  = lazyRE(SecretKeyPattern)
	vaultRoleRE  = lazyRE(VaultRolePattern)

	diskInterfaceRE = lazyRE(DiskInterfacePattern)
)

// lazyRE compiles pattern once, the first time it is needed.
func lazyRE(pattern string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(pattern) })
}
