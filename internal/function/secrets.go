package function

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/request"

	"github.com/homelab-infra/homelab-infra/internal/machine"
	"github.com/homelab-infra/homelab-infra/internal/vault/bootstrap"
)

// WrappingTokenRequirement is the name under which the function asks
// Crossplane for the Secret named by spec.secrets.wrappingTokenSecretRef.
const WrappingTokenRequirement = "vault-wrapping-token"

// vaultBootstrap returns the first-boot Vault file for the user-data (""
// for a claim without spec.secrets): the role and the wrapping token from
// the Secret `labctl secrets bootstrap` wrote. done is false while the
// Secret has not been fetched (or on a Fatal result). The token is never
// put in a message.
func vaultBootstrap(req *fnv1.RunFunctionRequest, rsp *fnv1.RunFunctionResponse, s *machine.Spec, xr map[string]any) (string, bool) {
	if s.Secrets == nil {
		return "", true
	}
	ref := s.Secrets.WrappingTokenSecretRef
	field := "spec.secrets.wrappingTokenSecretRef"
	b, obj, done := requireSecret(req, rsp, WrappingTokenRequirement, field, ref, machine.DefaultWrappingTokenKey, xr,
		"run `labctl secrets bootstrap "+s.Hostname+"`")
	if !done {
		return "", false
	}
	f := bootstrap.File{Role: s.Secrets.Role, WrappingToken: strings.TrimSpace(string(b))}
	if v, ok := obj.GetAnnotations()[bootstrap.ExpiresAnnotation]; ok {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			f.Expires = t
		}
	}
	out, err := bootstrap.Marshal(f)
	if err != nil {
		fatal(rsp, fmt.Errorf("%s: the Secret's wrapping token is unusable (%v); make a new one with `labctl secrets bootstrap %s`", field, err, s.Hostname))
		return "", false
	}
	return string(out), true
}

// requireSecret asks Crossplane for the Secret ref names (under name) and
// returns the value of its key, or done false while it is not there yet or
// on a Fatal result (which names field and says how to fix it).
func requireSecret(req *fnv1.RunFunctionRequest, rsp *fnv1.RunFunctionResponse, name, field string, ref machine.SecretRef,
	defaultKey string, xr map[string]any, fix string) ([]byte, *unstructured.Unstructured, bool) {
	ns := ref.Namespace
	if ns == "" {
		ns, _, _ = unstructured.NestedString(xr, "spec", "claimRef", "namespace")
	}
	if ns == "" {
		fatal(rsp, fmt.Errorf("%s.namespace is required: this XMachine has no claim whose namespace it could default to", field))
		return nil, nil, false
	}
	key := ref.Key
	if key == "" {
		key = defaultKey
	}
	require(rsp, name, &fnv1.ResourceSelector{
		ApiVersion: "v1",
		Kind:       "Secret",
		Match:      &fnv1.ResourceSelector_MatchName{MatchName: ref.Name},
		Namespace:  &ns,
	})
	secrets, resolved, err := request.GetRequiredResource(req, name)
	if err != nil {
		fatal(rsp, fmt.Errorf("cannot read the Secret named by %s: %w", field, err))
		return nil, nil, false
	}
	if !resolved {
		return nil, nil, false
	}
	if len(secrets) == 0 {
		fatal(rsp, fmt.Errorf("%s: Secret %s/%s not found; %s", field, ns, ref.Name, fix))
		return nil, nil, false
	}
	obj := secrets[0].Resource
	v, ok, _ := unstructured.NestedString(obj.Object, "data", key)
	if !ok {
		fatal(rsp, fmt.Errorf("%s: Secret %s/%s has no key %q; %s", field, ns, ref.Name, key, fix))
		return nil, nil, false
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		fatal(rsp, fmt.Errorf("%s: Secret %s/%s key %q is not base64 data", field, ns, ref.Name, key))
		return nil, nil, false
	}
	return b, obj, true
}
