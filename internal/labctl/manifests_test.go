package labctl_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/labctl"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// schemaDirs are the real CRD folders: hack/schemas.sh's (Flux, Argo CD,
// Crossplane, from the pinned modules) and the provider's.
func schemaDirs(t *testing.T) []string {
	t.Helper()
	testenv.Real(t)
	root := testenv.RepoRoot(t)
	out, err := exec.Command(filepath.Join(root, "hack", "schemas.sh")).Output()
	if err != nil {
		t.Fatalf("cannot gather the CRD schemas (hack/schemas.sh): %v", err)
	}
	return []string{filepath.Join(strings.TrimSpace(string(out)), "crds"), testenv.ProviderCRDsDir(t)}
}

// copyManifests copies deploy/ and crossplane/ of the repo to a new folder.
func copyManifests(t *testing.T) string {
	t.Helper()
	src := testenv.RepoRoot(t)
	dst := t.TempDir()
	for _, d := range labctl.ManifestDirs {
		testenv.CopyTree(t, filepath.Join(src, d), filepath.Join(dst, d))
	}
	return dst
}

// edit replaces old with new in a file of root, failing if old is absent.
func edit(t *testing.T, root, file, old, new string) {
	t.Helper()
	p := filepath.Join(root, file)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", file, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

type manifestCase struct {
	reason string
	file   string
	old    string
	new    string
	want   string // a problem containing this
}

func runManifestCases(t *testing.T, cases map[string]manifestCase, schemas []string) {
	t.Helper()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			root := copyManifests(t)
			if probs, _ := labctl.CheckManifests(context.Background(), root, schemas); len(probs) != 0 {
				t.Fatalf("the unedited copy has problems already: %v", probs)
			}
			edit(t, root, tc.file, tc.old, tc.new)
			probs, _ := labctl.CheckManifests(context.Background(), root, schemas)
			var got []string
			for _, p := range probs {
				got = append(got, p.String())
			}
			if all := strings.Join(got, "\n"); !strings.Contains(all, tc.want) {
				t.Errorf("%s\nwant a problem containing\n  %s\ngot:\n%s", tc.reason, tc.want, all)
			}
		})
	}
}

// TestManifestsAcrossFiles covers the checks that need no schema: what one
// GitOps file names must exist in another, or in the repo.
func TestManifestsAcrossFiles(t *testing.T) {
	runManifestCases(t, map[string]manifestCase{
		"KustomizationResourceMissing": {
			reason: "kustomize build fails on a resource that is not there",
			file:   "crossplane/kustomization.yaml", old: "  - xrd.yaml", new: "  - xrds.yaml",
			want: "crossplane/kustomization.yaml: resources[3]: xrds.yaml does not exist",
		},
		"FluxPathMissing": {
			reason: "a Kustomization of this repo's own source must point at a folder that exists",
			file:   "deploy/flux/machines.yaml", old: "path: ./crossplane/claims", new: "path: ./crossplane/machines",
			want: "deploy/flux/machines.yaml: spec.path: ./crossplane/machines is not a folder of this repository",
		},
		"FluxDependsOnUnknown": {
			reason: "dependsOn must name a Kustomization that exists, or Flux waits forever",
			file:   "deploy/flux/machines.yaml", old: "- name: crossplane-providerconfig", new: "- name: crossplane-provider-config",
			want: `deploy/flux/machines.yaml: spec.dependsOn[1]: Kustomization "crossplane-provider-config" is defined by no manifest here`,
		},
		"FluxSourceUnknown": {
			reason: "the source must be defined",
			file:   "deploy/flux/machines.yaml", old: "name: homelab-infra", new: "name: homelab",
			want: `deploy/flux/machines.yaml: spec.sourceRef.name: GitRepository "homelab" is defined by no manifest here`,
		},
		"FluxHealthExprDoesNotParse": {
			reason: "health expressions parse as Flux parses them",
			file:   "deploy/flux/machines.yaml", old: "c.type == 'Valid' && c.status == 'False')", new: "c.type == 'Valid' && c.status == 'False'",
			want: "deploy/flux/machines.yaml: spec.healthCheckExprs[0].failed: does not parse as CEL",
		},
		"HelmChartSourceUnknown": {
			reason: "the chart's GitRepository must be defined",
			file:   "deploy/flux/crossplane/helmrelease.yaml", old: "        name: crossplane\n", new: "        name: crossplane-charts\n",
			want: `spec.chart.spec.sourceRef.name: GitRepository "crossplane-charts" is defined by no manifest here`,
		},
		"ArgoPathMissing": {
			reason: "an Application of this repo must point at a folder that exists",
			file:   "deploy/argocd/apps/providerconfig.yaml", old: "path: crossplane/provider", new: "path: crossplane/providers",
			want: "deploy/argocd/apps/providerconfig.yaml: spec.source.path: crossplane/providers is not a folder of this repository",
		},
		"ArgoRevisionDiffers": {
			reason: "every application of this repo follows the app of apps' revision",
			file:   "deploy/argocd/apps/machines.yaml", old: "targetRevision: main", new: "targetRevision: dev",
			want: `deploy/argocd/apps/machines.yaml: spec.source.targetRevision: "dev", but deploy/argocd/root.yaml follows "main"`,
		},
		"ConfigurationDependencyDrift": {
			reason: "the Configuration must depend on the provider version provider.yaml installs",
			file:   "crossplane/crossplane.yaml", old: `version: "v0.1.0"`, new: `version: "v0.0.9"`,
			want: "crossplane/crossplane.yaml: spec.dependsOn[0].version: v0.0.9, but the manifest that installs registry.lab.home.arpa/homelab-infra/provider-proxmox pins v0.1.0",
		},
		"CoreKindMisspelt": {
			reason: "core kinds have no CRD but decode strictly",
			file:   "deploy/argocd/argocd-cm.yaml", old: "\ndata:\n", new: "\ndatas:\n",
			want: `deploy/argocd/argocd-cm.yaml: v1 ConfigMap: strict decoding error: unknown field "datas"`,
		},
	}, nil)
}

// TestManifestsRepo checks the repo's own manifests against the real CRDs.
func TestManifestsRepo(t *testing.T) {
	probs, n := labctl.CheckManifests(context.Background(), testenv.RepoRoot(t), schemaDirs(t))
	for _, p := range probs {
		t.Error(p.String())
	}
	if n < 10 {
		t.Errorf("checked %d manifest files; deploy/ and crossplane/ hold more", n)
	}
}

// TestManifestsSchemas: mistakes only the CRD schemas catch.
func TestManifestsSchemas(t *testing.T) {
	runManifestCases(t, map[string]manifestCase{
		"FluxFieldMisspelt": {
			reason: "the API server would drop a misspelt field without a word",
			file:   "deploy/flux/machines.yaml", old: "  prune: true", new: "  prunes: true",
			want: "deploy/flux/machines.yaml: spec.prunes: Forbidden: unknown field",
		},
		"FluxRequiredFieldMissing": {
			reason: "Flux's CRD requires interval",
			file:   "deploy/flux/source.yaml", old: "  interval: 1m\n", new: "",
			want: "deploy/flux/source.yaml: spec.interval: Required value",
		},
		"ArgoSyncWaveInvalid": {
			reason: "Argo CD's CRD types syncPolicy",
			file:   "deploy/argocd/apps/machines.yaml", old: "prune: true", new: "prune: yes-please",
			want: "deploy/argocd/apps/machines.yaml: spec.syncPolicy.automated.prune: Invalid value",
		},
		"PackageWithoutRegistry": {
			reason: "Crossplane v2 refuses a package name without a registry",
			file:   "crossplane/functions.yaml", old: "package: registry.lab.home.arpa/", new: "package: ",
			want: "crossplane/functions.yaml: spec.package: Invalid value",
		},
		"ProviderConfigMisspelt": {
			reason: "the provider's CRD checks the ProviderConfig",
			file:   "crossplane/provider/providerconfig.yaml", old: "source: Secret", new: "source: Secrets",
			want: "crossplane/provider/providerconfig.yaml: spec.credentials.source: Unsupported value",
		},
		"UnknownKind": {
			reason: "a kind no CRD defines is named, with the fix",
			file:   "deploy/flux/source.yaml", old: "kind: GitRepository", new: "kind: GitRepo",
			want: "no schema for source.toolkit.fluxcd.io/v1 GitRepo",
		},
	}, schemaDirs(t))
}
