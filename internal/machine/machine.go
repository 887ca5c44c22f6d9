// Package machine is the one Machine model: the claim's spec as Go types, the
// function input (sizing classes and site defaults), defaulting and
// validation. The composition function, labctl and the tests all use it, so a
// field is known in exactly one place; a test checks crossplane/xrd.yaml
// against these types so the schema cannot drift from them.
package machine

// API identity of the Machine claim and its composite resource (decision D1).
const (
	Group      = "homelab.dev"
	Version    = "v1alpha1"
	APIVersion = Group + "/" + Version
	ClaimKind  = "Machine"
	XRKind     = "XMachine"
	XRDName    = "xmachines.homelab.dev"
	// FunctionRef is the Function's object name: the one Crossplane gives it
	// when it installs it as a dependency of the Configuration package (the
	// package's repository path as a DNS label), so that installing from Git
	// (crossplane/functions.yaml) and from the package agree.
	FunctionRef = "homelab-infra-function-machine"
)

// Spec is the spec of a Machine claim (and of its XMachine). The json names are
// the contract with users' claims; crossplane/xrd.yaml mirrors them.
type Spec struct {
	// Class names a sizing class from the function input (cores, memory, disk).
	Class string `json:"class"`
	// Hostname is the VM's name and host name: an RFC 1123 label.
	Hostname string `json:"hostname"`
	// Domain makes the FQDN hostname.domain; the site default applies when empty.
	Domain string `json:"domain,omitempty"`
	// Network is DHCP or a static address.
	Network Network `json:"network"`
	// Proxmox pins placement and the VM id; node, storage and bridge fall
	// back to the site defaults.
	Proxmox Proxmox `json:"proxmox"`
	// Image names the template the VM is cloned from (a key of the input's images).
	Image string `json:"image"`
	// Nix says which flake output the VM converges to.
	Nix Nix `json:"nix,omitempty"`
	// Bootstrap is the admin user cloud-init creates on first boot.
	Bootstrap Bootstrap `json:"bootstrap"`
	// Role groups machines (role=dns); it becomes a Proxmox tag.
	Role string `json:"role,omitempty"`
	// Tags become Proxmox tags.
	Tags []string `json:"tags,omitempty"`
	// Secrets is the machine's Vault identity, when its Nix config declares
	// secrets (secrets.go).
	Secrets *Secrets `json:"secrets,omitempty"`

	// written are problems of the spec as written that its Go form cannot
	// show (a string written empty); DecodeSpec finds them, Validate
	// reports them.
	written Errors
}

// Network is either {dhcp: true} or a static address with its subnet.
type Network struct {
	DHCP    bool     `json:"dhcp,omitempty"`
	IP      string   `json:"ip,omitempty"`
	CIDR    string   `json:"cidr,omitempty"`
	Gateway string   `json:"gateway,omitempty"`
	DNS     []string `json:"dns,omitempty"`
}

// Proxmox is where the VM lives. Pointers mark "unset" where zero is a value
// the user could write by mistake (vlan: 0 must be reported, not ignored).
type Proxmox struct {
	Node    string `json:"node,omitempty"`
	Storage string `json:"storage,omitempty"`
	Bridge  string `json:"bridge,omitempty"`
	VLAN    *int64 `json:"vlan,omitempty"`
	// VMID is the VM's id in Proxmox and the machine's identity there: the
	// composed VM's external name, so that a rebuilt management cluster
	// adopts the VM instead of cloning a second one. Required.
	VMID *int64 `json:"vmId"`
}

// Nix points the VM at its flake output.
type Nix struct {
	// FlakeRef is e.g. git+https://git.lab.home.arpa/homelab-infra?ref=main#dns01.
	// When empty, the site default flakeRepo + "#" + hostname applies.
	FlakeRef string `json:"flakeRef,omitempty"`
}

// Bootstrap is the admin user. Its keys are given inline or by a Secret.
type Bootstrap struct {
	AdminUser                  string     `json:"adminUser"`
	SSHAuthorizedKeys          []string   `json:"sshAuthorizedKeys,omitempty"`
	SSHAuthorizedKeysSecretRef *SecretRef `json:"sshAuthorizedKeysSecretRef,omitempty"`
}

// SecretRef names a key of a Secret.
type SecretRef struct {
	// Name of the Secret.
	Name string `json:"name"`
	// Namespace of the Secret; the claim's namespace when empty.
	Namespace string `json:"namespace,omitempty"`
	// Key in the Secret's data; the field's default key when empty.
	Key string `json:"key,omitempty"`
}

// DefaultSecretKey is the Secret key read when a SecretRef names none.
const DefaultSecretKey = "authorized_keys"

// Status is what the function reports on the XR (and Crossplane copies to the claim).
type Status struct {
	VMID          int64    `json:"vmId,omitempty"`
	IPv4Addresses []string `json:"ipv4Addresses,omitempty"`
	FlakeRef      string   `json:"flakeRef,omitempty"`
	Node          string   `json:"node,omitempty"`
	// System is the NixOS system the machine runs, from its agent
	// (internal/runningstate; the function's running.go).
	System *SystemStatus `json:"system,omitempty"`
}

// SystemStatus is a machine's running system against what its ref asks for.
type SystemStatus struct {
	DesiredCommit string `json:"desiredCommit,omitempty"`
	RunningCommit string `json:"runningCommit,omitempty"`
	Verdict       string `json:"verdict,omitempty"`
	PendingReboot bool   `json:"pendingReboot,omitempty"`
	LastFailure   string `json:"lastFailure,omitempty"`
}
