package labctl

import (
	"crypto/sha256"
	"os"
	"sync"

	"github.com/homelab-infra/homelab-infra/internal/schemacheck"
)

// claimValidator is the validator of the claim CRD Crossplane generates from
// the XRD at path. Compiling its CEL rules is most of a validation's cost,
// so a validator is kept for each XRD content seen (a handful in a test run,
// one in a CLI run).
func claimValidator(path string) (xr, claim *schemacheck.Validator, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return schemacheck.ForXRD(path) // reports the read error in its words
	}
	key := sha256.Sum256(b)
	if v, ok := validators.Load(key); ok {
		p := v.(*[2]*schemacheck.Validator)
		return p[0], p[1], nil
	}
	xr, claim, err = schemacheck.ForXRD(path)
	if err != nil {
		return nil, nil, err
	}
	validators.Store(key, &[2]*schemacheck.Validator{xr, claim})
	return xr, claim, nil
}

var validators sync.Map
