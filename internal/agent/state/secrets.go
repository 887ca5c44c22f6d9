package state

import "time"

// StageSecrets is the secrets stage: fetch from Vault, write to tmpfs.
const StageSecrets = "secrets"

// Secrets is what the secrets stage last did, for status and metrics. It
// holds references and times only, never a value or a token.
type Secrets struct {
	// LastRun and LastSuccess of the stage; Error is the last run's failure.
	LastRun     time.Time `json:"lastRun,omitzero"`
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	Error       string    `json:"error,omitempty"`
	// VaultReachable is false while the last run could not reach Vault.
	VaultReachable bool `json:"vaultReachable"`
	// TokenExpires is when the cached Vault token expires (not the token).
	TokenExpires time.Time `json:"tokenExpires,omitzero"`
	// Items are the declared secrets by name.
	Items map[string]SecretItem `json:"items,omitempty"`
	// Counters survive one-shot runs.
	Logins   int64 `json:"logins"`
	Renewals int64 `json:"renewals"`
	Changes  int64 `json:"changes"`
	Restarts int64 `json:"restarts"`
	Failures int64 `json:"failures"`
}

// SecretItem is one secret's last known state.
type SecretItem struct {
	Kind string `json:"kind"` // kv or pki
	// Source is the KV path#field or the PKI mount/role: where it comes from.
	Source string `json:"source"`
	Path   string `json:"path"`
	// KeyPath is a certificate's key file.
	KeyPath string `json:"keyPath,omitempty"`
	// Version of the KV secret, Serial and NotAfter of the certificate.
	Version  int       `json:"version,omitempty"`
	Serial   string    `json:"serial,omitempty"`
	NotAfter time.Time `json:"notAfter,omitzero"`
	// Changed is when the file's value last changed.
	Changed time.Time `json:"changed,omitzero"`
	Error   string    `json:"error,omitempty"`
}
