package labctl_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/function"
	"github.com/homelab-infra/homelab-infra/internal/labctl"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/schemacheck"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

const privateKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----"

// badClaim is one broken claim: a change to the good dns01 claim, and the
// field each checker must name. funcField and schemaField default to field;
// schemaField "" with schema false means the rule is not the XRD's (classes
// and images live in the function input, not in the schema).
type badClaim struct {
	reason      string
	mutate      func(spec map[string]any)
	field       string
	funcField   string
	schemaField string
	schema      bool
	secret      string // a value that must never appear in any message
}

func badClaims() map[string]badClaim {
	net := func(s map[string]any) map[string]any { return s["network"].(map[string]any) }
	px := func(s map[string]any) map[string]any { return s["proxmox"].(map[string]any) }
	boot := func(s map[string]any) map[string]any { return s["bootstrap"].(map[string]any) }
	return map[string]badClaim{
		"NetworkMissing":       {reason: "no network at all", mutate: func(s map[string]any) { delete(s, "network") }, field: "spec.network", schema: true},
		"DHCPWithStaticIP":     {reason: "dhcp and a static ip conflict", mutate: func(s map[string]any) { net(s)["dhcp"] = true }, field: "spec.network.ip", schemaField: "spec.network", schema: true},
		"StaticNoGateway":      {reason: "a static address needs a gateway", mutate: func(s map[string]any) { delete(net(s), "gateway") }, field: "spec.network.gateway", schemaField: "spec.network", schema: true},
		"StaticNoCIDR":         {reason: "a static address needs a cidr", mutate: func(s map[string]any) { delete(net(s), "cidr") }, field: "spec.network.cidr", schemaField: "spec.network", schema: true},
		"NeitherDHCPNorStatic": {reason: "an empty network block", mutate: func(s map[string]any) { s["network"] = map[string]any{"dns": []any{"10.0.10.1"}} }, field: "spec.network.ip", schemaField: "spec.network", schema: true},
		"IPOutsideCIDR":        {reason: "the ip must lie in the cidr", mutate: func(s map[string]any) { net(s)["ip"] = "10.0.20.5" }, field: "spec.network.ip", schema: true},
		"GatewayOutsideCIDR":   {reason: "the gateway must lie in the subnet", mutate: func(s map[string]any) { net(s)["gateway"] = "10.0.11.1" }, field: "spec.network.gateway", schema: true},
		"IPNotAnAddress":       {reason: "an octet over 255", mutate: func(s map[string]any) { net(s)["ip"] = "10.0.10.300" }, field: "spec.network.ip", schema: true},
		"IPv6Address":          {reason: "only IPv4 is supported", mutate: func(s map[string]any) { net(s)["ip"] = "fd00::53" }, field: "spec.network.ip", schema: true},
		"CIDRHostBitsSet":      {reason: "the cidr must be a network address", mutate: func(s map[string]any) { net(s)["cidr"] = "10.0.10.5/24" }, field: "spec.network.cidr", schema: true},
		"CIDRTooNarrow":        {reason: "a /31 has no room for host and gateway", mutate: func(s map[string]any) { net(s)["cidr"] = "10.0.10.52/31" }, field: "spec.network.cidr", schema: true},
		"GatewayIsOwnIP":       {reason: "the gateway cannot be the machine", mutate: func(s map[string]any) { net(s)["gateway"] = "10.0.10.53" }, field: "spec.network.gateway", schema: true},
		"DNSNotAnAddress":      {reason: "dns servers are addresses", mutate: func(s map[string]any) { net(s)["dns"] = []any{"resolver.lab"} }, field: "spec.network.dns[0]", schema: true},
		"TooManyDNSServers":    {reason: "resolv.conf uses three", mutate: func(s map[string]any) { net(s)["dns"] = []any{"10.0.10.1", "10.0.10.2", "10.0.10.3", "10.0.10.4"} }, field: "spec.network.dns", schema: true},
		"HostnameUpperCase":    {reason: "RFC 1123 labels are lower-case", mutate: func(s map[string]any) { s["hostname"] = "DNS01" }, field: "spec.hostname", schema: true},
		"HostnameUnderscore":   {reason: "no underscores in host names", mutate: func(s map[string]any) { s["hostname"] = "dns_01" }, field: "spec.hostname", schema: true},
		"HostnameTooLong":      {reason: "labels have at most 63 characters", mutate: func(s map[string]any) { s["hostname"] = strings.Repeat("a", 64) }, field: "spec.hostname", schema: true},
		"HostnameMissing":      {reason: "the host name is required", mutate: func(s map[string]any) { delete(s, "hostname") }, field: "spec.hostname", schema: true},
		"ClassMissing":         {reason: "the class is required", mutate: func(s map[string]any) { delete(s, "class") }, field: "spec.class", schema: true},
		"UnknownClass":         {reason: "classes come from the function input", mutate: func(s map[string]any) { s["class"] = "xlarge" }, field: "spec.class"},
		"UnknownImage":         {reason: "images come from the function input", mutate: func(s map[string]any) { s["image"] = "ubuntu-24.04" }, field: "spec.image"},
		"EmptyKeyList":         {reason: "an admin user without keys cannot log in", mutate: func(s map[string]any) { boot(s)["sshAuthorizedKeys"] = []any{} }, field: "spec.bootstrap.sshAuthorizedKeys", schema: true},
		"EmptyKey":             {reason: "an empty key line", mutate: func(s map[string]any) { boot(s)["sshAuthorizedKeys"] = []any{""} }, field: "spec.bootstrap.sshAuthorizedKeys[0]", schema: true},
		"PrivateKeyPasted":     {reason: "a private key must be refused and never echoed", mutate: func(s map[string]any) { boot(s)["sshAuthorizedKeys"] = []any{privateKey} }, field: "spec.bootstrap.sshAuthorizedKeys[0]", schema: true, secret: "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"},
		"MalformedKey":         {reason: "not an OpenSSH public key line", mutate: func(s map[string]any) { boot(s)["sshAuthorizedKeys"] = []any{"AAAAC3NzaC1lZDI1NTE5 ops@laptop"} }, field: "spec.bootstrap.sshAuthorizedKeys[0]", schema: true},
		"KeysAndSecretRef":     {reason: "keys inline or by Secret, not both", mutate: func(s map[string]any) { boot(s)["sshAuthorizedKeysSecretRef"] = map[string]any{"name": "ops-keys"} }, field: "spec.bootstrap.sshAuthorizedKeysSecretRef", schemaField: "spec.bootstrap", schema: true},
		"NoKeysNoSecretRef":    {reason: "keys are required one way or the other", mutate: func(s map[string]any) { delete(boot(s), "sshAuthorizedKeys") }, field: "spec.bootstrap.sshAuthorizedKeys", schemaField: "spec.bootstrap", schema: true},
		"SecretRefWithoutName": {reason: "a Secret reference names its Secret", mutate: func(s map[string]any) {
			delete(boot(s), "sshAuthorizedKeys")
			boot(s)["sshAuthorizedKeysSecretRef"] = map[string]any{"key": "keys"}
		}, field: "spec.bootstrap.sshAuthorizedKeysSecretRef.name", schema: true},
		"AdminUserRoot":    {reason: "the admin user is not root", mutate: func(s map[string]any) { boot(s)["adminUser"] = "root" }, field: "spec.bootstrap.adminUser", schema: true},
		"AdminUserInvalid": {reason: "a valid Linux user name", mutate: func(s map[string]any) { boot(s)["adminUser"] = "Ops!" }, field: "spec.bootstrap.adminUser", schema: true},
		"FlakeRefNoHost": {reason: "the flake ref names the host after '#'", mutate: func(s map[string]any) {
			s["nix"] = map[string]any{"flakeRef": "git+https://git.lab.home.arpa/homelab-infra?ref=main"}
		}, field: "spec.nix.flakeRef", schema: true},
		"FlakeRefGitGit": {reason: "Nix 2.8 rejects git+git://", mutate: func(s map[string]any) {
			s["nix"] = map[string]any{"flakeRef": "git+git://git.lab.home.arpa/homelab-infra#dns01"}
		}, field: "spec.nix.flakeRef", schema: true},
		"FlakeRefSpaces": {reason: "a flake ref has no spaces", mutate: func(s map[string]any) { s["nix"] = map[string]any{"flakeRef": "git+https://git.lab/x y#dns01"} }, field: "spec.nix.flakeRef", schema: true},
		"VLANZero":       {reason: "VLAN ids start at 1", mutate: func(s map[string]any) { px(s)["vlan"] = int64(0) }, field: "spec.proxmox.vlan", schema: true},
		"VLANTooHigh":    {reason: "VLAN ids end at 4094", mutate: func(s map[string]any) { px(s)["vlan"] = int64(4095) }, field: "spec.proxmox.vlan", schema: true},
		"VLANNotANumber": {reason: "a string where a number belongs", mutate: func(s map[string]any) { px(s)["vlan"] = "ten" }, field: "spec.proxmox.vlan", schema: true},
		"VMIDTooLow":     {reason: "Proxmox VM ids start at 100", mutate: func(s map[string]any) { px(s)["vmId"] = int64(99) }, field: "spec.proxmox.vmId", schema: true},
		"BridgeTooLong":  {reason: "interface names have at most 15 characters", mutate: func(s map[string]any) { px(s)["bridge"] = "vmbr0123456789012" }, field: "spec.proxmox.bridge", schema: true},
		"NodeInvalid":    {reason: "node names are labels", mutate: func(s map[string]any) { px(s)["node"] = "PVE 1" }, field: "spec.proxmox.node", schema: true},
		"TagInvalid":     {reason: "Proxmox tags are lower-case words", mutate: func(s map[string]any) { s["tags"] = []any{"Core!"} }, field: "spec.tags[0]", schema: true},
		"TagDuplicate":   {reason: "tags are a set", mutate: func(s map[string]any) { s["tags"] = []any{"core", "core"} }, field: "spec.tags[1]", schema: true},
		"DomainInvalid":  {reason: "an empty DNS label", mutate: func(s map[string]any) { s["domain"] = "lab..home.arpa" }, field: "spec.domain", schema: true},
		"RoleInvalid":    {reason: "roles are labels", mutate: func(s map[string]any) { s["role"] = "DNS Server" }, field: "spec.role", schema: true},
		"SecretsNoRole": {reason: "spec.secrets names the AppRole role", mutate: func(s map[string]any) {
			s["secrets"] = map[string]any{"wrappingTokenSecretRef": map[string]any{"name": "dns01-vault"}}
		}, field: "spec.secrets.role", schema: true},
		"SecretsBadRole": {reason: "a role name Vault would refuse", mutate: func(s map[string]any) {
			s["secrets"] = map[string]any{"role": "dns 01", "wrappingTokenSecretRef": map[string]any{"name": "dns01-vault"}}
		}, field: "spec.secrets.role", schema: true},
		"SecretsNoTokenSecret": {reason: "spec.secrets names the Secret with the wrapping token", mutate: func(s map[string]any) {
			s["secrets"] = map[string]any{"role": "dns01", "wrappingTokenSecretRef": map[string]any{"key": "token"}}
		}, field: "spec.secrets.wrappingTokenSecretRef.name", schema: true},
		"MisspeltField": {
			reason: "a typo is dropped by pruning in the cluster; the schema check names it, the function then misses the network",
			mutate: func(s map[string]any) { s["netwrok"] = s["network"]; delete(s, "network") },
			field:  "spec.netwrok", funcField: "spec.network", schema: true,
		},
	}
}

// fixtureRepo is a throwaway copy of the repo's Crossplane files with one
// Nix host, dns01 (minimal, test-only), and the given claim.
func fixtureRepo(t testing.TB, claims map[string]map[string]any, hosts ...string) string {
	t.Helper()
	src := testenv.RepoRoot(t)
	dst := t.TempDir()
	for _, p := range []string{repo.XRDPath, repo.CompositionPath, filepath.Join(repo.ClaimsDir, "namespace.yaml")} {
		b, err := os.ReadFile(filepath.Join(src, p))
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dst, p), b)
	}
	for _, h := range hosts {
		write(t, filepath.Join(dst, repo.HostsDir, h, "configuration.nix"), []byte("{ ... }: { }\n"))
	}
	for name, c := range claims {
		writeYAML(t, filepath.Join(dst, repo.ClaimsDir, name+".yaml"), c)
	}
	if len(claims) == 0 {
		if err := os.MkdirAll(filepath.Join(dst, repo.ClaimsDir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func writeYAML(t testing.TB, path string, obj map[string]any) {
	t.Helper()
	b, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	write(t, path, b)
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	write(t, dst, b)
}

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// goodClaim is the example dns01 claim as a generic object.
func goodClaim(t testing.TB) map[string]any {
	t.Helper()
	return exampleClaim(t, "dns01.yaml")
}

// exampleClaim is an example claim of the repo as a generic object.
func exampleClaim(t testing.TB, file string) map[string]any {
	t.Helper()
	docs, err := repo.ReadDocs(filepath.Join(testenv.RepoRoot(t), repo.ClaimsDir, file))
	if err != nil {
		t.Fatal(err)
	}
	return docs[0].Object
}

// repoRules are the repo's function input and the validator of the claim
// CRD Crossplane derives from its XRD.
func repoRules(t *testing.T) ([]byte, *schemacheck.Validator) {
	t.Helper()
	root := testenv.RepoRoot(t)
	input, err := repo.CompositionInput(filepath.Join(root, repo.CompositionPath))
	if err != nil {
		t.Fatal(err)
	}
	_, claimSchema, err := schemacheck.ForXRD(filepath.Join(root, repo.XRDPath))
	if err != nil {
		t.Fatal(err)
	}
	return input, claimSchema
}

// TestBadClaims runs every bad claim through the three checkers: the
// composition function (a Fatal result naming the field, nothing composed),
// labctl validate (file and field, non-zero), and, where the rule is a
// schema rule, the claim CRD Crossplane derives from our XRD, evaluated
// in-process with the API server's validation and CEL.
func TestBadClaims(t *testing.T) {
	cases := badClaims()
	if len(cases) < 25 {
		t.Fatalf("want at least 25 bad claims, have %d", len(cases))
	}
	input, claimSchema := repoRules(t)
	good := goodClaim(t)

	// The good claim passes all three, or the cases below prove nothing.
	if msgs := checkFunction(t, good, input); msgs != "" {
		t.Fatalf("the good claim fails the function: %s", msgs)
	}
	if errs := claimSchema.Validate(context.Background(), good); len(errs) > 0 {
		t.Fatalf("the good claim fails the XRD: %s", schemacheck.Messages(errs))
	}
	if r := labctl.Validate(context.Background(), fixtureRepo(t, map[string]map[string]any{"dns01": good}, "dns01")); !r.OK() {
		t.Fatalf("the good claim fails labctl validate: %v", r.Problems)
	}

	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			claim := runtime.DeepCopyJSON(good)
			tc.mutate(claim["spec"].(map[string]any))
			funcField := or(tc.funcField, tc.field)
			schemaField := or(tc.schemaField, tc.field)

			fn := checkFunction(t, claim, input)
			switch {
			case fn == "":
				t.Errorf("%s: the function composed the bad claim", tc.reason)
			case !strings.Contains(fn, funcField):
				t.Errorf("%s: the function's message does not name %s:\n%s", tc.reason, funcField, fn)
			}

			r := labctl.Validate(context.Background(), fixtureRepo(t, map[string]map[string]any{"bad": claim}, "dns01"))
			var all []string
			found := false
			for _, p := range r.Problems {
				all = append(all, p.String())
				if strings.HasPrefix(p.String(), filepath.Join(repo.ClaimsDir, "bad.yaml")+": ") && strings.Contains(p.String(), tc.field) {
					found = true
				}
			}
			if r.OK() || !found {
				t.Errorf("%s: labctl validate did not report %s in %s/bad.yaml; it said:\n%s", tc.reason, tc.field, repo.ClaimsDir, strings.Join(all, "\n"))
			}

			errs := claimSchema.Validate(context.Background(), claim)
			xrd := schemacheck.Messages(errs)
			switch {
			case tc.schema && !strings.Contains(xrd, schemaField):
				t.Errorf("%s: the XRD's schema did not report %s; it said:\n%s", tc.reason, schemaField, xrd)
			case !tc.schema && len(errs) > 0:
				t.Errorf("%s: not a schema rule, yet the XRD rejects the claim:\n%s", tc.reason, xrd)
			}

			t.Logf("function: %s\nlabctl: %s\nxrd: %s", fn, strings.Join(all, "\n"), xrd)
			if tc.secret != "" {
				// kube-apiserver itself echoes an invalid value back to the
				// client that sent it; our own messages (events, CI logs) never do.
				for what, msg := range map[string]string{"function": fn, "labctl": strings.Join(all, "\n")} {
					if strings.Contains(msg, tc.secret) {
						t.Errorf("%s: the %s message echoes the secret value:\n%s", tc.reason, what, msg)
					}
				}
			}
		})
	}
}

// checkFunction runs the function on the XR of claim and returns its Fatal
// messages, or "" when it composed. On a Fatal result it must compose nothing.
func checkFunction(t *testing.T, claim map[string]any, input []byte) string {
	t.Helper()
	d := repo.Doc{File: "bad.yaml", Object: claim}
	c, err := repo.ParseClaim(d)
	if c == nil {
		t.Fatalf("cannot read the claim: %v", err)
	}
	req, err := function.NewRequest(repo.XRFor(c), input, nil, function.Offline())
	if err != nil {
		t.Fatal(err)
	}
	rsp, err := (&function.Function{}).RunFunction(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, r := range rsp.GetResults() {
		if r.GetSeverity() == fnv1.Severity_SEVERITY_FATAL {
			msgs = append(msgs, r.GetMessage())
		}
	}
	if len(msgs) > 0 && len(rsp.GetDesired().GetResources()) > 0 {
		t.Errorf("a Fatal result with %d composed resources: a bad claim must compose nothing", len(rsp.GetDesired().GetResources()))
	}
	// The claim must show the refusal too: Valid=False with the same message.
	var valid *fnv1.Condition
	for _, c := range rsp.GetConditions() {
		if c.GetType() == function.ConditionValid {
			valid = c
		}
	}
	wantStatus := fnv1.Status_STATUS_CONDITION_TRUE
	if len(msgs) > 0 {
		wantStatus = fnv1.Status_STATUS_CONDITION_FALSE
	}
	switch {
	case valid == nil:
		t.Errorf("no %s condition in the response", function.ConditionValid)
	case valid.GetStatus() != wantStatus || valid.GetTarget() != fnv1.Target_TARGET_COMPOSITE_AND_CLAIM:
		t.Errorf("%s condition: status %v, target %v; want %v on the XR and claim", function.ConditionValid, valid.GetStatus(), valid.GetTarget(), wantStatus)
	case len(msgs) > 0 && valid.GetMessage() != msgs[0]:
		t.Errorf("%s condition message %q; want the Fatal's %q", function.ConditionValid, valid.GetMessage(), msgs[0])
	}
	return strings.Join(msgs, "\n")
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestTokenNeverEchoed: a flake ref with a token is refused by every layer,
// and no layer repeats the token: the API server's message goes into
// Flux's events and status, the function's into the claim's conditions,
// labctl's into CI logs.
func TestTokenNeverEchoed(t *testing.T) {
	input, claimSchema := repoRules(t)
	for _, ref := range []string{
		"git+https://ops:glpat-s3cret@git.lab.home.arpa/homelab-infra?ref=main#dns01",
		"git+https://glpat-s3cret@git.lab.home.arpa/homelab-infra#dns01",
		"git+https://git.lab.home.arpa/homelab-infra?access_token=glpat-s3cret#dns01",
	} {
		claim := runtime.DeepCopyJSON(goodClaim(t))
		claim["spec"].(map[string]any)["nix"] = map[string]any{"flakeRef": ref}
		xrd := schemacheck.Messages(claimSchema.Validate(context.Background(), claim))
		fn := checkFunction(t, claim, input)
		r := labctl.Validate(context.Background(), fixtureRepo(t, map[string]map[string]any{"dns01": claim}, "dns01"))
		lab := problems(r)
		for layer, msg := range map[string]string{"the API server": xrd, "the function": fn, "labctl validate": lab} {
			if !strings.Contains(msg, "spec.nix.flakeRef") || strings.Contains(msg, "s3cret") {
				t.Errorf("%s: %s must refuse it naming spec.nix.flakeRef, without the token:\n%s", ref, layer, msg)
			}
		}
	}
}
