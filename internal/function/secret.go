package function

import (
	"strings"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// require asks Crossplane for resources. Ask every time: Crossplane only
// supplies what the latest response requires.
func require(rsp *fnv1.RunFunctionResponse, name string, sel *fnv1.ResourceSelector) {
	if rsp.Requirements == nil {
		rsp.Requirements = &fnv1.Requirements{}
	}
	if rsp.Requirements.Resources == nil {
		rsp.Requirements.Resources = map[string]*fnv1.ResourceSelector{}
	}
	rsp.Requirements.Resources[name] = sel
}

// secretKeys returns the authorized keys held by the Secret the spec names,
// asking Crossplane for it when the request does not carry it yet. done is
// false while the Secret has not been fetched (or on a Fatal result).
func secretKeys(req *fnv1.RunFunctionRequest, rsp *fnv1.RunFunctionResponse, s *machine.Spec, xr map[string]any) (keys []string, done bool) {
	ref := s.Bootstrap.SSHAuthorizedKeysSecretRef
	if ref == nil {
		return nil, true
	}
	b, _, done := requireSecret(req, rsp, SSHKeysRequirement, "spec.bootstrap.sshAuthorizedKeysSecretRef", *ref, machine.DefaultSecretKey, xr,
		"put the public keys in it under that key, one per line")
	if !done {
		return nil, false
	}
	return strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n"), true
}
