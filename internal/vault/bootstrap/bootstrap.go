// Package bootstrap is the one file that carries a machine's first Vault
// identity from its claim to the machine: cloud-init writes it at first boot
// (internal/cloudinit renders it from the claim's spec.secrets and the
// wrapping token in the Secret that `labctl secrets bootstrap` made), and the
// agent reads it once, unwraps the token, keeps the secret_id and deletes it.
//
// It holds a response-wrapped, single-use token with a short TTL, never a
// secret_id: whoever reads it after first boot holds a used-up token.
package bootstrap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// Path is where cloud-init writes the file on the machine (root only, 0600).
// It is under the agent's default state folder: on disk, so a reboot before
// the agent ran does not lose it (cloud-init writes files once per instance).
const Path = "/var/lib/nix-gitops/vault/bootstrap.json"

// ExpiresAnnotation is the Secret annotation holding the token's expiry
// (RFC 3339); the agent uses it to tell an expired token from a used one.
const ExpiresAnnotation = "homelab.dev/wrapping-token-expires"

// File is the file's content.
type File struct {
	// Role is the AppRole role the machine logs in as (spec.secrets.role):
	// the wrapping token must have been made for it.
	Role string `json:"role"`
	// WrappingToken wraps the machine's first secret_id.
	WrappingToken string `json:"wrappingToken"`
	// Expires is when the wrapping token expires, when known.
	Expires time.Time `json:"expires,omitzero"`
}

// ValidRole reports whether r is an AppRole role name (the claim's
// spec.secrets.role): the claim's own rule.
func ValidRole(r string) bool { return machine.ValidVaultRole(r) }

// Marshal renders f as the file's bytes.
func Marshal(f File) ([]byte, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	return json.Marshal(f)
}

// Parse reads the file's bytes. Errors never include the token.
func Parse(b []byte) (File, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return File{}, errors.New("not a JSON object with role, wrappingToken and expires")
	}
	return f, f.check()
}

func (f File) check() error {
	switch {
	case !ValidRole(f.Role):
		return fmt.Errorf("role %q is not an AppRole role name", f.Role)
	case f.WrappingToken == "":
		return errors.New("wrappingToken is empty")
	case bytes.ContainsAny([]byte(f.WrappingToken), " \t\r\n\"\\"):
		return errors.New("wrappingToken is not a Vault token (it holds spaces or quotes)")
	}
	return nil
}
