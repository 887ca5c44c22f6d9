package labctl_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/homelab-infra/homelab-infra/internal/labctl"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// TestValidateReadsAsFluxApplies: labctl validate sees the claims folder as
// Flux's kustomize-controller applies it (internal/fluxbuild): every
// sub-folder, YAML as kustomize parses it, the namespace claims live in.
// Each case was a claim labctl passed and Flux refused, or the other way.
func TestValidateReadsAsFluxApplies(t *testing.T) {
	dns01 := func(t *testing.T) []byte {
		b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), repo.ClaimsDir, "dns01.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := map[string]struct {
		reason string
		files  func(t *testing.T) map[string]string // under crossplane/claims
		remove []string
		want   []string // each in some problem; none means OK
	}{
		"SubFolder": {
			reason: "Flux applies claims in sub-folders: labctl must see them, and must not advise a second claim for their host",
			files:  func(t *testing.T) map[string]string { return map[string]string{"core/dns01.yaml": string(dns01(t))} },
			remove: []string{"dns01.yaml"},
		},
		"SubFolderDuplicate": {
			reason: "a second claim for one machine in a sub-folder",
			files: func(t *testing.T) map[string]string {
				return map[string]string{"old/dns01-copy.yml": strings.Replace(string(dns01(t)), "name: dns01\n", "name: dns01-copy\n", 1)}
			},
			want: []string{"crossplane/claims/old/dns01-copy.yml: spec.hostname: dns01 is also the host name of"},
		},
		"DHCPYes": {
			reason: "dhcp: yes is the string \"yes\" to kustomize, which the API server refuses",
			files: func(t *testing.T) map[string]string {
				return map[string]string{"web01.yaml": strings.NewReplacer("name: dns01\n", "name: web01\n", "hostname: dns01", "hostname: web01", "vmId: 1053", "vmId: 1054", "#dns01", "#web01",
					"    ip: 10.0.10.53\n    cidr: 10.0.10.0/24\n    gateway: 10.0.10.1\n", "    dhcp: yes\n").Replace(string(dns01(t)))}
			},
			want: []string{"crossplane/claims/web01.yaml: spec.network.dhcp: yes is a string; want true or false"},
		},
		"HostnameNo": {
			reason: "hostname: no is the string \"no\" to kustomize, a valid host name",
			files: func(t *testing.T) map[string]string {
				return map[string]string{"no.yaml": strings.NewReplacer("name: dns01\n", "name: no\n", "hostname: dns01", "hostname: no", "vmId: 1053", "vmId: 1054", "#dns01", "#no", "ip: 10.0.10.53", "ip: 10.0.10.54").Replace(string(dns01(t)))}
			},
			want: []string{`names host "no", but nix/hosts/no/configuration.nix does not exist`}, // and nothing about its type
		},
		"EmptyTags": {
			reason: "an empty tags: is null, which the API server drops",
			files: func(t *testing.T) map[string]string {
				return map[string]string{"dns01.yaml": strings.Replace(string(dns01(t)), "tags: [core]", "tags:", 1)}
			},
		},
		"DuplicateKey": {
			reason: "kustomize refuses a key given twice, and Flux the whole revision",
			files: func(t *testing.T) map[string]string {
				return map[string]string{"dns01.yaml": strings.Replace(string(dns01(t)), "  class: small\n", "  class: small\n  class: medium\n", 1)}
			},
			want: []string{"crossplane/claims/dns01.yaml: ", `mapping key "class" already defined`},
		},
		"InvalidNamespace": {
			reason: "a namespace that is no DNS label",
			files: func(t *testing.T) map[string]string {
				return map[string]string{"dns01.yaml": strings.Replace(string(dns01(t)), "namespace: infra-machines", "namespace: Infra_Machines", 1)}
			},
			want: []string{"crossplane/claims/dns01.yaml: metadata.namespace: Invalid value: \"Infra_Machines\""},
		},
		"NamespaceGone": {
			reason: "without namespace.yaml Flux would prune the namespace, its claims and their VMs",
			remove: []string{"namespace.yaml"},
			want:   []string{"crossplane/claims/dns01.yaml: metadata.namespace: infra-machines is not a Namespace in crossplane/claims"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			root := fixtureRepo(t, map[string]map[string]any{"dns01": runtime.DeepCopyJSON(goodClaim(t))}, "dns01")
			for _, f := range tc.remove {
				if err := os.Remove(filepath.Join(root, repo.ClaimsDir, f)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.files != nil {
				for p, c := range tc.files(t) {
					write(t, filepath.Join(root, repo.ClaimsDir, p), []byte(c))
				}
			}
			r := labctl.Validate(context.Background(), root)
			all := problems(r)
			if len(tc.want) == 0 && !r.OK() {
				t.Errorf("%s: want no problem, got:\n%s", tc.reason, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("%s: want a problem containing %q, got:\n%s", tc.reason, w, all)
				}
			}
			if strings.Contains(all, "has no claim in") {
				t.Errorf("%s: labctl advises a claim for a host that has one:\n%s", tc.reason, all)
			}
		})
	}
}
