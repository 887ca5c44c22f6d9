package machine

import "fmt"

// Secrets is how a machine gets its Vault identity (design D7): the AppRole
// role it logs in as, and the Secret that holds its first secret_id as a
// response-wrapped, single-use token (made by `labctl secrets bootstrap`).
// It names things only; no value is ever written in a claim.
type Secrets struct {
	// Role is the Vault AppRole role.
	Role string `json:"role"`
	// WrappingTokenSecretRef names the Secret key holding the wrapping token
	// (key DefaultWrappingTokenKey when empty).
	WrappingTokenSecretRef SecretRef `json:"wrappingTokenSecretRef"`
}

// DefaultWrappingTokenKey is the Secret key read when
// spec.secrets.wrappingTokenSecretRef names none.
const DefaultWrappingTokenKey = "wrapping_token"

func validateSecrets(errs *Errors, s *Secrets) {
	if s == nil {
		return
	}
	switch {
	case s.Role == "":
		errs.add("spec.secrets.role", nil, "is required; name the machine's Vault AppRole role, e.g. dns01")
	case !ValidVaultRole(s.Role):
		errs.add("spec.secrets.role", s.Role, fmt.Sprintf("is not a Vault AppRole role name; use at most %d letters, digits, '_', '-' and '.'", MaxVaultRoleLen))
	}
	validateSecretRef(errs, "spec.secrets.wrappingTokenSecretRef", &s.WrappingTokenSecretRef, DefaultWrappingTokenKey,
		"name the Secret that `labctl secrets bootstrap` wrote")
}

// validateSecretRef checks a reference to a Secret key.
func validateSecretRef(errs *Errors, p string, ref *SecretRef, defaultKey, what string) {
	switch {
	case ref.Name == "":
		errs.add(p+".name", nil, "is required; "+what)
	case len(ref.Name) > MaxDomainLen || !secretNameRE().MatchString(ref.Name):
		errs.add(p+".name", ref.Name, "is not a valid Secret name")
	}
	if ref.Namespace != "" && (len(ref.Namespace) > MaxLabelLength || !labelRE().MatchString(ref.Namespace)) {
		errs.add(p+".namespace", ref.Namespace, "is not a valid namespace; leave it out to use the claim's namespace")
	}
	if ref.Key != "" && (len(ref.Key) > MaxSecretKeyLen || !secretKeyRE().MatchString(ref.Key)) {
		errs.add(p+".key", ref.Key, "is not a valid Secret key; leave it out to use "+defaultKey)
	}
}

// ValidVaultRole reports whether r is an AppRole role name, the form the
// claim's spec.secrets.role takes.
func ValidVaultRole(r string) bool { return len(r) <= MaxVaultRoleLen && vaultRoleRE().MatchString(r) }
