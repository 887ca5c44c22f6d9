package function

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/vault/bootstrap"
)

const wrapToken = "hvs.CAESIMadeUpWrappingToken"

// tokenSecret is the Secret `labctl secrets bootstrap` writes.
func tokenSecret(name string, data map[string]string, expires string) *structpb.Struct {
	d := map[string]any{}
	for k, v := range data {
		d[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	meta := map[string]any{"name": name, "namespace": "infra-machines"}
	if expires != "" {
		meta["annotations"] = map[string]any{bootstrap.ExpiresAnnotation: expires}
	}
	s, err := structpb.NewStruct(map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": d})
	if err != nil {
		panic(err)
	}
	return s
}

// TestVaultBootstrapSecret covers spec.secrets: the function asks Crossplane
// for the wrapping-token Secret (alongside the keys Secret, in one round),
// composes nothing until it has it, then writes the first-boot Vault file
// into the user-data; a missing Secret or key is Fatal and names the fix.
func TestVaultBootstrapSecret(t *testing.T) {
	cases := map[string]struct {
		reason    string
		ref       map[string]any
		required  []*structpb.Struct // nil: not yet resolved
		resolved  bool
		wantFatal string
		want      *bootstrap.File
	}{
		"FirstCall": {
			reason: "without the Secret the function asks for it and composes nothing",
			ref:    map[string]any{"name": "dns01-vault"},
		},
		"Resolved": {
			reason:   "the role and the token (with its expiry) land in the user-data",
			ref:      map[string]any{"name": "dns01-vault"},
			required: []*structpb.Struct{tokenSecret("dns01-vault", map[string]string{"wrapping_token": wrapToken + "\n"}, "2026-12-01T21:00:00Z")},
			resolved: true,
			want:     &bootstrap.File{Role: "dns01", WrappingToken: wrapToken},
		},
		"NotFound": {
			reason:    "no such Secret: the message says how to make one",
			ref:       map[string]any{"name": "dns01-vault"},
			resolved:  true,
			wantFatal: "spec.secrets.wrappingTokenSecretRef: Secret infra-machines/dns01-vault not found; run `labctl secrets bootstrap dns01`",
		},
		"NoSuchKey": {
			reason:    "the Secret lacks the key",
			ref:       map[string]any{"name": "dns01-vault", "key": "token"},
			required:  []*structpb.Struct{tokenSecret("dns01-vault", map[string]string{"wrapping_token": wrapToken}, "")},
			resolved:  true,
			wantFatal: `has no key "token"`,
		},
		"Garbage": {
			reason:    "a value that is no token is refused without echoing it",
			ref:       map[string]any{"name": "dns01-vault"},
			required:  []*structpb.Struct{tokenSecret("dns01-vault", map[string]string{"wrapping_token": "hvs.a b\"c"}, "")},
			resolved:  true,
			wantFatal: "the Secret's wrapping token is unusable",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			claims, input := exampleClaims(t)
			xr := repo.XRFor(claims["dns01"])
			xr["spec"].(map[string]any)["secrets"] = map[string]any{"role": "dns01", "wrappingTokenSecretRef": tc.ref}
			rsp := runWithRequired(t, xr, input, WrappingTokenRequirement, tc.resolved, tc.required)
			sel := rsp.GetRequirements().GetResources()[WrappingTokenRequirement]
			if sel.GetKind() != "Secret" || sel.GetMatchName() != "dns01-vault" || sel.GetNamespace() != "infra-machines" {
				t.Errorf("%s: want a requirement for Secret infra-machines/dns01-vault, got %v", tc.reason, sel)
			}
			got := fatals(rsp)
			switch {
			case tc.wantFatal == "" && got != "":
				t.Fatalf("%s: unexpected Fatal: %s", tc.reason, got)
			case tc.wantFatal != "" && !strings.Contains(got, tc.wantFatal):
				t.Errorf("%s: want a Fatal containing %q, got %q", tc.reason, tc.wantFatal, got)
			case strings.Contains(got, "hvs."):
				t.Errorf("%s: the message shows the token: %s", tc.reason, got)
			}
			if tc.want == nil {
				if n := len(rsp.GetDesired().GetResources()); n != 0 {
					t.Errorf("%s: composed %d resources; want none", tc.reason, n)
				}
				return
			}
			f := vaultFileOf(t, userDataOf(rsp))
			if diff := cmp.Diff(tc.want.Role, f.Role); diff != "" || f.WrappingToken != tc.want.WrappingToken || f.Expires.IsZero() {
				t.Errorf("%s: the first-boot file holds role %q, expires %v, the token: %v", tc.reason, f.Role, f.Expires, f.WrappingToken == tc.want.WrappingToken)
			}
		})
	}
}

// vaultFileOf finds the first-boot Vault file in user-data.
func vaultFileOf(t *testing.T, userData string) bootstrap.File {
	t.Helper()
	var doc struct {
		WriteFiles []struct{ Path, Content, Permissions string } `json:"write_files"`
	}
	if err := yaml.Unmarshal([]byte(userData), &doc); err != nil {
		t.Fatal(err)
	}
	for _, w := range doc.WriteFiles {
		if w.Path == bootstrap.Path {
			if w.Permissions != "0600" {
				t.Errorf("%s has mode %s, want 0600", w.Path, w.Permissions)
			}
			f, err := bootstrap.Parse([]byte(w.Content))
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in the user-data:\n%s", bootstrap.Path, userData)
	return bootstrap.File{}
}

// runWithRequired runs the function on xr, holding its identities; when resolved, the request
// carries items as Crossplane's answer to the requirement name.
func runWithRequired(t *testing.T, xr map[string]any, input []byte, name string, resolved bool, items []*structpb.Struct) *fnv1.RunFunctionResponse {
	t.Helper()
	req, err := NewRequest(xr, input, held(t, xr, nil), Offline())
	if err != nil {
		t.Fatal(err)
	}
	if resolved {
		rs := []*fnv1.Resource{}
		for _, s := range items {
			rs = append(rs, &fnv1.Resource{Resource: s})
		}
		req.RequiredResources[name] = &fnv1.Resources{Items: rs}
	}
	rsp, err := (&Function{}).RunFunction(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return rsp
}

// userDataOf is the composed snippet's content.
func userDataOf(rsp *fnv1.RunFunctionResponse) string {
	ud := rsp.GetDesired().GetResources()["user-data"].GetResource().AsMap()
	return ud["spec"].(map[string]any)["forProvider"].(map[string]any)["sourceRaw"].([]any)[0].(map[string]any)["data"].(string)
}
