package compose_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/homelab-infra/homelab-infra/internal/machine"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/schemacheck"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// FuzzModelAgainstSchemas varies the free-form fields of the dns01 claim and
// checks two promises at once:
//
//   - the Go model and the XRD's schema (with CEL) accept and refuse the same
//     claims, so a claim admitted by the cluster is never refused by the
//     function (or the reverse) for a field both check;
//   - whatever the model accepts composes into resources the provider's CRDs
//     accept.
//
// The one rule only the model has (an address that is its subnet's network or
// broadcast address) is left out of the comparison: CEL has no broadcast.
func FuzzModelAgainstSchemas(f *testing.F) {
	root := testenv.RepoRoot(f)
	_, claimSchema, err := schemacheck.ForXRD(filepath.Join(root, repo.XRDPath))
	if err != nil {
		f.Fatal(err)
	}
	provider, err := schemacheck.LoadDir(testenv.ProviderCRDsDir(f))
	if err != nil {
		f.Fatal(err)
	}
	in, err := repo.LoadInput(filepath.Join(root, repo.CompositionPath))
	if err != nil {
		f.Fatal(err)
	}
	docs, err := repo.ReadDocs(filepath.Join(root, repo.ClaimsDir, "dns01.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	good := docs[0].Object

	f.Add("dns01", "10.0.10.53", "10.0.10.0/24", "10.0.10.1", "10.0.10.1", "core", "ops", "git+https://git.lab.home.arpa/homelab-infra?ref=main#dns01", "lab.home.arpa", "vmbr0")
	f.Add("a", "192.168.1.2", "192.168.0.0/16", "192.168.0.1", "1.1.1.1", "x.y_z", "_u", "github:o/r#a", "a", "b")
	f.Add("DNS", "10.0.10.300", "10.0.10.5/24", "10.0.11.1", "::1", "Core", "root", "git+git://h/r#a", "a..b", "toolongbridgename0")
	f.Add("a-", "010.0.0.1", "10.0.0.0/31", "10.0.0.0", "10.0.0.1 ", "-x", "9u", "path:/x#A", "-a.b", "0br")
	f.Fuzz(func(t *testing.T, host, ip, cidr, gw, dns, tag, user, flake, domain, bridge string) {
		claim := runtime.DeepCopyJSON(good)
		s := claim["spec"].(map[string]any)
		s["hostname"], s["domain"], s["tags"] = host, domain, []any{tag}
		s["network"] = map[string]any{"ip": ip, "cidr": cidr, "gateway": gw, "dns": []any{dns}}
		s["nix"] = map[string]any{"flakeRef": flake}
		s["bootstrap"].(map[string]any)["adminUser"] = user
		s["proxmox"].(map[string]any)["bridge"] = bridge
		// The model reads an empty optional string as "not set" (the XRD
		// refuses it, and labctl validate reports the XRD's message), so
		// compare on the claim as a user leaving the field out writes it.
		if domain == "" {
			delete(s, "domain")
		}
		if bridge == "" {
			delete(s["proxmox"].(map[string]any), "bridge")
		}

		c, err := repo.ParseClaim(repo.Doc{File: "fuzz.yaml", Object: claim})
		if err != nil {
			t.Fatal(err)
		}
		modelErrs := machine.Validate(c.Spec, in)
		xrdErrs := claimSchema.Validate(context.Background(), claim)
		modelOnly := false
		for _, e := range modelErrs {
			if strings.Contains(e.Detail, "network or broadcast address") {
				modelOnly = true
			}
		}
		if !modelOnly && (len(modelErrs) == 0) != (len(xrdErrs) == 0) {
			t.Fatalf("the model and the XRD disagree:\nmodel: %v\nxrd: %s", modelErrs, schemacheck.Messages(xrdErrs))
		}
		if len(modelErrs) > 0 {
			return
		}
		for _, r := range composeAll(t, c, in) {
			if errs := provider.Validate(context.Background(), r.Object.Object); len(errs) > 0 {
				t.Fatalf("a valid claim composed a resource the provider refuses (%s):\n%s", r.Name, schemacheck.Messages(errs))
			}
		}
	})
}
