package function

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/resource"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/repo"
)

const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAFLJ6VeZ/nBqc9gC5W59y5uJxq2icS504scLzx64ilF ops@workstation"

// secretClaimXR is docker01's XR with its keys moved to a Secret reference.
func secretClaimXR(t *testing.T, ref map[string]any) (map[string]any, []byte) {
	t.Helper()
	claims, input := exampleClaims(t)
	xr := repo.XRFor(claims["docker01"])
	boot := xr["spec"].(map[string]any)["bootstrap"].(map[string]any)
	delete(boot, "sshAuthorizedKeys")
	boot["sshAuthorizedKeysSecretRef"] = ref
	return xr, input
}

func secret(data map[string]string) *structpb.Struct {
	d := map[string]any{}
	for k, v := range data {
		d[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	s, err := structpb.NewStruct(map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "ops-keys", "namespace": "infra-machines"},
		"data":     d,
	})
	if err != nil {
		panic(err)
	}
	return s
}

func fatals(rsp *fnv1.RunFunctionResponse) string { return messages(rsp, fnv1.Severity_SEVERITY_FATAL) }

// messages are the response's results of one severity, one a line.
func messages(rsp *fnv1.RunFunctionResponse, sev fnv1.Severity) string {
	var msgs []string
	for _, r := range rsp.GetResults() {
		if r.GetSeverity() == sev {
			msgs = append(msgs, r.GetMessage())
		}
	}
	return strings.Join(msgs, "\n")
}

// TestSecretKeys covers keys read from a Secret: the function asks
// Crossplane for it (required resources), composes nothing until it has it,
// then puts its keys in the user-data; a missing Secret or key is Fatal.
func TestSecretKeys(t *testing.T) {
	cases := map[string]struct {
		reason    string
		ref       map[string]any
		required  []*structpb.Struct // nil: not yet resolved by Crossplane
		resolved  bool
		wantFatal string
		wantKey   bool
	}{
		"FirstCall": {
			reason: "without the Secret the function asks for it and composes nothing",
			ref:    map[string]any{"name": "ops-keys"},
		},
		"Resolved": {
			reason:   "with the Secret its keys land in the user-data; comments and blank lines are skipped",
			ref:      map[string]any{"name": "ops-keys"},
			required: []*structpb.Struct{secret(map[string]string{"authorized_keys": "# ops\n" + key + "\n\n"})},
			resolved: true, wantKey: true,
		},
		"OtherKey": {
			reason:   "the key name can be chosen",
			ref:      map[string]any{"name": "ops-keys", "key": "keys"},
			required: []*structpb.Struct{secret(map[string]string{"keys": key})},
			resolved: true, wantKey: true,
		},
		"NotFound": {
			reason:    "Crossplane found no such Secret",
			ref:       map[string]any{"name": "ops-keys"},
			resolved:  true,
			wantFatal: "spec.bootstrap.sshAuthorizedKeysSecretRef: Secret infra-machines/ops-keys not found",
		},
		"NoSuchKey": {
			reason:    "the Secret lacks the key",
			ref:       map[string]any{"name": "ops-keys"},
			required:  []*structpb.Struct{secret(map[string]string{"other": key})},
			resolved:  true,
			wantFatal: `has no key "authorized_keys"`,
		},
		"BadKeyInSecret": {
			reason:    "a Secret line that is not a public key is refused, without echoing it",
			ref:       map[string]any{"name": "ops-keys"},
			required:  []*structpb.Struct{secret(map[string]string{"authorized_keys": "-----BEGIN OPENSSH PRIVATE KEY-----"})},
			resolved:  true,
			wantFatal: "spec.bootstrap.sshAuthorizedKeysSecretRef line 1 of the Secret's key is a PRIVATE key",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			xr, input := secretClaimXR(t, tc.ref)
			rsp := runWithRequired(t, xr, input, SSHKeysRequirement, tc.resolved, tc.required)

			sel := rsp.GetRequirements().GetResources()[SSHKeysRequirement]
			if sel.GetKind() != "Secret" || sel.GetMatchName() != "ops-keys" || sel.GetNamespace() != "infra-machines" {
				t.Errorf("%s: want a requirement for Secret infra-machines/ops-keys (the claim's namespace), got %v", tc.reason, sel)
			}
			got := fatals(rsp)
			switch {
			case tc.wantFatal == "" && got != "":
				t.Fatalf("%s: unexpected Fatal: %s", tc.reason, got)
			case tc.wantFatal != "" && !strings.Contains(got, tc.wantFatal):
				t.Errorf("%s: want a Fatal containing %q, got %q", tc.reason, tc.wantFatal, got)
			case strings.Contains(got, "BEGIN OPENSSH"):
				t.Errorf("%s: the message echoes the Secret's content: %s", tc.reason, got)
			}
			n := len(rsp.GetDesired().GetResources())
			if !tc.wantKey {
				if n != 0 {
					t.Errorf("%s: composed %d resources; want none", tc.reason, n)
				}
				return
			}
			data := userDataOf(rsp)
			if !strings.Contains(data, "- "+key+"\n") || strings.Contains(data, "# ops") {
				t.Errorf("%s: user-data does not hold exactly the Secret's key:\n%s", tc.reason, data)
			}
		})
	}
}

// TestReadiness: the snippet is ready when the provider reports it Ready;
// the VM when the provider reports it Ready and its guest agent an address
// (a VM that booted nothing is Ready to the provider). The VM is composed
// only once the snippet is ready, or when it exists already.
func TestReadiness(t *testing.T) {
	claims, input := exampleClaims(t)
	c := claims["dns01"]
	cond := func(status string) map[string]any {
		return map[string]any{"status": map[string]any{"conditions": []any{map[string]any{"type": "Ready", "status": status}}}}
	}
	booted := func(status string) map[string]any {
		o := cond(status)
		o["status"].(map[string]any)["atProvider"] = map[string]any{"ipv4Addresses": []any{[]any{"127.0.0.1"}, []any{"10.0.10.53"}}}
		return o
	}
	cases := map[string]struct {
		reason   string
		observed map[string]map[string]any
		want     map[string]resource.Ready
	}{
		"NothingYet": {reason: "nothing exists yet: the snippet first, no VM", want: map[string]resource.Ready{"user-data": resource.ReadyFalse}},
		"SnippetUploading": {
			reason:   "the snippet exists but is not Ready: still no VM",
			observed: map[string]map[string]any{"user-data": cond("False")},
			want:     map[string]resource.Ready{"user-data": resource.ReadyFalse},
		},
		"SnippetReady": {
			reason:   "the snippet is Ready: now the VM",
			observed: map[string]map[string]any{"user-data": cond("True")},
			want:     map[string]resource.Ready{"vm": resource.ReadyFalse, "user-data": resource.ReadyTrue},
		},
		"Creating": {
			reason:   "Ready=False is not ready",
			observed: map[string]map[string]any{"vm": cond("False"), "user-data": cond("True")},
			want:     map[string]resource.Ready{"vm": resource.ReadyFalse, "user-data": resource.ReadyTrue},
		},
		"BootedNothing": {
			reason:   "Ready to the provider, but no guest answered with an address",
			observed: map[string]map[string]any{"vm": cond("True"), "user-data": cond("True")},
			want:     map[string]resource.Ready{"vm": resource.ReadyFalse, "user-data": resource.ReadyTrue},
		},
		"AllReady": {
			reason:   "both Ready=True, and the guest reports its address",
			observed: map[string]map[string]any{"vm": booted("True"), "user-data": cond("True")},
			want:     map[string]resource.Ready{"vm": resource.ReadyTrue, "user-data": resource.ReadyTrue},
		},
		"VMKeptWhileSnippetFails": {
			reason:   "an existing VM stays composed whatever its snippet does",
			observed: map[string]map[string]any{"vm": booted("True"), "user-data": cond("False")},
			want:     map[string]resource.Ready{"vm": resource.ReadyTrue, "user-data": resource.ReadyFalse},
		},
		"NoConditions": {
			reason:   "a resource without conditions is not ready",
			observed: map[string]map[string]any{"vm": {"status": map[string]any{}}, "user-data": {}},
			want:     map[string]resource.Ready{"vm": resource.ReadyFalse, "user-data": resource.ReadyFalse},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			xr := repo.XRFor(c)
			req, err := NewRequest(xr, input, held(t, xr, tc.observed), Offline())
			if err != nil {
				t.Fatal(err)
			}
			rsp, err := (&Function{}).RunFunction(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]resource.Ready{}
			for n, r := range rsp.GetDesired().GetResources() {
				if compose.IsIdentity(n) {
					continue // TestIdentities
				}
				switch r.GetReady() {
				case fnv1.Ready_READY_TRUE:
					got[n] = resource.ReadyTrue
				case fnv1.Ready_READY_FALSE:
					got[n] = resource.ReadyFalse
				default:
					got[n] = resource.ReadyUnspecified
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s: readiness (-want, +got):\n%s", tc.reason, diff)
			}
		})
	}
}

func TestIPv4Addresses(t *testing.T) {
	in := []any{[]any{"127.0.0.1"}, []any{"10.0.10.53", "169.254.1.2"}, []any{"172.17.0.1", "10.0.10.53"}, "junk"}
	want := []any{"10.0.10.53", "172.17.0.1"}
	if diff := cmp.Diff(want, IPv4Addresses(in)); diff != "" {
		t.Errorf("loopback, link-local and duplicates are left out, order kept (-want, +got):\n%s", diff)
	}
}

// TestBadInput: a broken Composition input is a Fatal naming the input
// field, and nothing is composed.
func TestBadInput(t *testing.T) {
	claims, input := exampleClaims(t)
	cases := map[string]struct {
		reason string
		input  string
		want   string
	}{
		"NoInput":       {reason: "the step has no input", input: "", want: "has no input"},
		"UnknownField":  {reason: "a typo in the input", input: strings.Replace(string(input), `"classes"`, `"clases"`, 1), want: `unknown field "clases"`},
		"ZeroCores":     {reason: "a class with zero cores", input: strings.Replace(string(input), `"cores":1`, `"cores":0`, 1), want: "input.classes.small.cores"},
		"NoSnippetsDir": {reason: "no snippet datastore", input: strings.Replace(string(input), `"snippetDatastore":"local",`, "", 1), want: "input.defaults.snippetDatastore"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if tc.input == string(input) {
				t.Fatalf("%s: the mutation did not apply to %s", tc.reason, input)
			}
			in := []byte(tc.input)
			if tc.input == "" {
				in = []byte("{}")
			}
			req, err := NewRequest(repo.XRFor(claims["dns01"]), in, nil, Offline())
			if err != nil {
				t.Fatal(err)
			}
			if tc.input == "" {
				req.Input = nil
			}
			rsp, err := (&Function{}).RunFunction(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if got := fatals(rsp); !strings.Contains(got, tc.want) {
				t.Errorf("%s: want a Fatal containing %q, got %q", tc.reason, tc.want, got)
			}
			if n := len(rsp.GetDesired().GetResources()); n != 0 {
				t.Errorf("%s: composed %d resources; want none", tc.reason, n)
			}
		})
	}
}
