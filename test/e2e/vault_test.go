//go:build e2e && vault

package e2e

// The secrets' way through the cluster, on the real control plane (the
// shared stack) and a real Vault dev server: labctl secrets bootstrap writes
// the wrapping token's Secret, Crossplane and the function put it in the
// snippet, the machine (the agent's secrets stage, in process) unwraps it
// and fetches its secrets. Then no secret value is in any object the API
// server holds, and the one credential that did pass through the cluster,
// the wrapping token, is used up.
//
// Run with `make vault-e2e`, or:
// TOOLS_BIN=$(hack/build-tools.sh) VAULT_BIN=$(hack/build-vault.sh) go test -tags 'e2e vault' -run TestVault ./test/e2e/

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/homelab-infra/homelab-infra/internal/agent/secrets"
	"github.com/homelab-infra/homelab-infra/internal/agent/state"
	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/labctl"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/vault/bootstrap"
	"github.com/homelab-infra/homelab-infra/internal/vaulttest"
)

func TestVaultNoSecretInTheCluster(t *testing.T) {
	cp := stack(t)
	ctx := ctxFor(t)
	srv := vaulttest.Start(t)
	srv.Lab(t)
	host := srv.AddHost(t, "dns01", vaulttest.HostOptions{})
	srv.PutKV(t, "hosts/dns01/tsig", map[string]any{"key": "tsig-in-vault-only"})

	// The operator's repo: the example dns01 claim, in a namespace of this
	// test, with spec.secrets.
	ns := newNamespace(t, cp, "vault")
	claim := exampleClaim(t, "dns01", ns)
	if err := unstructured.SetNestedMap(claim.Object, map[string]any{
		"role": "dns01", "wrappingTokenSecretRef": map[string]any{"name": "dns01-vault"},
	}, "spec", "secrets"); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, p := range []string{repo.XRDPath, repo.CompositionPath} {
		b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), p))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, p), b)
	}
	y, err := yaml.Marshal(claim.Object)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, repo.ClaimsDir, "dns01.yaml"), y)

	// labctl secrets bootstrap, with the operator's Vault login (the root
	// token here) and the cluster's API.
	kube, err := kubernetes.NewForConfig(cp.REST)
	if err != nil {
		t.Fatal(err)
	}
	res, err := labctl.SecretsBootstrap(ctx, root, labctl.Bootstrap{Host: "dns01", TTL: 10 * time.Minute, Vault: srv.Root, Kube: kube})
	if err != nil {
		t.Fatalf("labctl secrets bootstrap: %v", err)
	}
	sec, err := kube.CoreV1().Secrets(ns).Get(ctx, "dns01-vault", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the Secret was not written: %v", err)
	}
	wrap := string(sec.Data["wrapping_token"])
	if wrap == "" || sec.Annotations[bootstrap.ExpiresAnnotation] != res.Expires.Format(time.RFC3339) {
		t.Fatalf("the Secret holds no wrapping token or no expiry: %v", sec.Annotations)
	}

	// Crossplane fetches the Secret for the function; the snippet carries
	// the first-boot file.
	if err := cp.Apply(ctx, claim); err != nil {
		t.Fatal(err)
	}
	_, file, _ := waitComposed(t, cp, ns, "dns01")
	data, _, _ := unstructured.NestedSlice(file.Object, "spec", "forProvider", "sourceRaw")
	userData, _ := data[0].(map[string]any)["data"].(string)
	var ud struct {
		WriteFiles []struct{ Path, Content, Permissions string } `json:"write_files"`
	}
	if err := yaml.Unmarshal([]byte(userData), &ud); err != nil {
		t.Fatal(err)
	}
	var first string
	for _, w := range ud.WriteFiles {
		if w.Path == bootstrap.Path && w.Permissions == "0600" {
			first = w.Content
		}
	}
	if !strings.Contains(first, wrap) || !strings.Contains(first, `"role":"dns01"`) {
		t.Fatalf("the snippet does not carry the first-boot file:\n%s", userData)
	}

	// The machine's first boot: cloud-init writes the file, the agent's
	// secrets stage unwraps it and fetches a KV value and a certificate.
	disk := t.TempDir()
	shm, err := os.MkdirTemp("/dev/shm", "e2e-vault-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	bootFile := filepath.Join(disk, "bootstrap.json")
	writeFile(t, bootFile, []byte(first))
	decl, err := json.Marshal(map[string]any{
		"vault": map[string]any{"address": srv.Addr, "roleId": host.RoleID, "tokenFile": filepath.Join(shm, "token"), "bootstrapFile": bootFile},
		"secrets": map[string]any{
			"tsig":    map[string]any{"kv": map[string]any{"path": "secret/hosts/dns01/tsig", "field": "key"}, "path": filepath.Join(shm, "tsig")},
			"dns-tls": map[string]any{"pki": map[string]any{"role": "dns01", "commonName": "dns01." + vaulttest.Domain}, "path": filepath.Join(shm, "tls.crt"), "keyPath": filepath.Join(shm, "tls.key")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := secrets.Parse(decl)
	if err != nil {
		t.Fatal(err)
	}
	stage := &secrets.Stage{StateDir: disk}
	if _, err := stage.Refresh(ctx, f, &state.Secrets{}); err != nil {
		t.Fatalf("the machine cannot fetch its secrets with the token from its snippet: %v", err)
	}

	// What must never be in the cluster.
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	var tok struct{ Token string }
	if err := json.Unmarshal([]byte(read(filepath.Join(shm, "token"))), &tok); err != nil {
		t.Fatal(err)
	}
	never := map[string]string{
		"the KV value": read(filepath.Join(shm, "tsig")), "the secret_id": read(filepath.Join(disk, "vault", "secret-id")),
		"the machine's Vault token": tok.Token, "the operator's Vault token": srv.RootToken,
	}
	for i, line := range strings.Split(read(filepath.Join(shm, "tls.key")), "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") {
			never[fmt.Sprintf("line %d of the private key", i+1)] = line
		}
	}
	objects, kinds := dumpAll(t, ctx, cp.REST)
	for what, v := range never {
		if v == "" {
			t.Fatalf("%s is empty: the check would prove nothing", what)
		}
		// A Secret's data is base64: look for that form too.
		b64 := base64.StdEncoding.EncodeToString([]byte(v))
		for _, o := range objects {
			if strings.Contains(o.json, v) || strings.Contains(o.json, b64) {
				t.Errorf("%s is in %s", what, o.name)
			}
		}
	}
	// The search saw the objects that matter.
	for _, want := range []string{"Secret " + ns + "/dns01-vault", compose.FileKind + " "} {
		found := false
		for _, o := range objects {
			if strings.HasPrefix(o.name, want) && (strings.Contains(o.json, wrap) || strings.Contains(o.json, base64.StdEncoding.EncodeToString([]byte(wrap)))) {
				found = true
			}
		}
		if !found {
			t.Errorf("the search did not see %s with the wrapping token (%d objects of %d kinds)", want, len(objects), kinds)
		}
	}
	// The wrapping token in them is used up: whoever reads the Secret, the
	// File or the snippet on Proxmox now can do nothing with it.
	if _, err := srv.Root.Logical().Write("sys/wrapping/lookup", map[string]any{"token": wrap}); err == nil {
		t.Errorf("the wrapping token in the cluster is still valid after first boot")
	}
}

type apiObject struct{ name, json string }

// dumpAll lists every object of every listable kind the API server serves.
func dumpAll(t *testing.T, ctx context.Context, rc *rest.Config) ([]apiObject, int) {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	lists, err := dc.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		t.Fatalf("cannot discover the API: %v", err)
	}
	var out []apiObject
	kinds := 0
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if !hasVerb(r.Verbs, "list") || strings.Contains(r.Name, "/") {
				continue
			}
			items, err := dyn.Resource(gv.WithResource(r.Name)).List(ctx, metav1.ListOptions{})
			if err != nil {
				continue
			}
			kinds++
			for _, it := range items.Items {
				b, _ := json.Marshal(it.Object)
				name := r.Kind + " " + it.GetName()
				if it.GetNamespace() != "" {
					name = r.Kind + " " + it.GetNamespace() + "/" + it.GetName()
				}
				out = append(out, apiObject{name: name, json: string(b)})
			}
		}
	}
	return out, kinds
}

func hasVerb(verbs []string, v string) bool {
	for _, x := range verbs {
		if x == v {
			return true
		}
	}
	return false
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
