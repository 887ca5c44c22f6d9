package labctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/schemacheck"
)

// ManifestDirs are the folders a GitOps tool applies from, relative to the
// repo's root. Claims are checked on their own (Validate), with the rules of
// the Machine model.
var ManifestDirs = []string{"deploy", "crossplane"}

// manifests adds CheckManifests' findings to the report.
func (v *validator) manifests(ctx context.Context, schemaDirs []string) {
	probs, n := CheckManifests(ctx, v.root, schemaDirs, v.opts.UncheckedGroups...)
	for _, g := range v.opts.UncheckedGroups {
		v.report.Notes = append(v.report.Notes, fmt.Sprintf("the kinds of API group %s are not checked against a schema (--unchecked-group): give the folder of their CRDs to --schemas to check them", g))
	}
	v.report.Problems = append(v.report.Problems, probs...)
	v.report.Manifests = n
	// Without schemas, Print's summary says they were not checked.
	v.report.Schemas = len(schemaDirs) > 0
}

// CheckManifests checks everything Flux, Argo CD or `crossplane xpkg build`
// reads from this repo, except the claims:
//   - every object against the CRD schemas found under schemaDirs (Flux's,
//     Argo CD's, Crossplane's, the provider's; hack/schemas.sh gathers them),
//     core kinds by a strict decode; with no schemaDirs this part is skipped;
//   - every kustomization.yaml's resources exist;
//   - Flux: each Kustomization's source, dependsOn and (for this repo's own
//     source) path exist, and its health expressions parse as Flux parses them;
//   - Argo CD: each Application that points at this repo names a path that
//     exists, at the same revision as the app of apps;
//   - the Configuration package depends on the very provider and function
//     versions that provider/provider.yaml and functions.yaml install.
//
// It returns the problems and the number of files read.
//
// Objects of the API groups in unchecked are left out of the schema check
// (make demo, on a machine without the provider's CRDs).
func CheckManifests(ctx context.Context, root string, schemaDirs []string, unchecked ...string) ([]Problem, int) {
	v := &validator{root: root, report: &Report{}}
	var set schemacheck.Set
	if len(schemaDirs) > 0 {
		s, err := schemacheck.LoadTree(schemaDirs...)
		if err != nil {
			v.add(root, "", fmt.Sprintf("%v; give --schemas the folders hack/schemas.sh prints and provider/package/crds", err))
			return v.report.Problems, 0
		}
		set = s
	}
	files, err := manifestFiles(root)
	if err != nil {
		v.add(root, "", err.Error())
		return v.report.Problems, 0
	}
	m := &manifests{v: v, set: set, ctx: ctx, unchecked: unchecked}
	for _, f := range files {
		m.file(f)
	}
	m.crossChecks()
	sort.SliceStable(v.report.Problems, func(i, j int) bool { return v.report.Problems[i].File < v.report.Problems[j].File })
	return v.report.Problems, len(files)
}

func manifestFiles(root string) ([]string, error) {
	claims := filepath.Join(root, repo.ClaimsDir)
	var files []string
	for _, d := range ManifestDirs {
		if !dirExists(filepath.Join(root, d)) {
			continue
		}
		err := filepath.WalkDir(filepath.Join(root, d), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() && p == claims {
				return filepath.SkipDir
			}
			if !e.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("cannot list the manifests in %s: %w", d, err)
		}
	}
	return files, nil
}

// manifests holds what the files define, for the checks across files.
type manifests struct {
	v   *validator
	set schemacheck.Set
	ctx context.Context
	// unchecked are API groups left out of the schema check.
	unchecked []string

	gitRepos       map[string]repo.Doc // flux-system GitRepositories by name
	kustomizations []repo.Doc
	helmReleases   []repo.Doc
	applications   []repo.Doc
	packages       map[string]string // package (without tag) -> tag, from Provider/Function objects
	configurations []repo.Doc
}

var strictCore = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

func (m *manifests) file(f string) {
	base := filepath.Base(f)
	if base == "kustomization.yaml" || base == "kustomization.yml" {
		m.kustomization(f)
		return
	}
	docs, err := repo.ReadDocs(f)
	if err != nil {
		m.v.add(f, "", strings.TrimPrefix(err.Error(), f+": "))
		return
	}
	for _, d := range docs {
		m.doc(d)
	}
}

func (m *manifests) doc(d repo.Doc) {
	av, kind := d.Kind()
	where := d.Where()
	group, _, _ := strings.Cut(av, "/")
	switch {
	case group == "meta.pkg.crossplane.io":
		// Package metadata has no CRD; `crossplane xpkg build` lints it.
		if kind == "Configuration" {
			m.configurations = append(m.configurations, d)
		}
		return
	case av == "source.toolkit.fluxcd.io/v1" && kind == "GitRepository":
		if m.gitRepos == nil {
			m.gitRepos = map[string]repo.Doc{}
		}
		m.gitRepos[name(d)] = d
	case av == "kustomize.toolkit.fluxcd.io/v1" && kind == "Kustomization":
		m.kustomizations = append(m.kustomizations, d)
	case group == "helm.toolkit.fluxcd.io" && kind == "HelmRelease":
		m.helmReleases = append(m.helmReleases, d)
	case group == "argoproj.io" && kind == "Application":
		m.applications = append(m.applications, d)
	case group == "pkg.crossplane.io" && (kind == "Provider" || kind == "Function"):
		if pkg, ok := str(d.Object, "spec", "package"); ok {
			if i := strings.LastIndex(pkg, ":"); i > 0 {
				if m.packages == nil {
					m.packages = map[string]string{}
				}
				m.packages[pkg[:i]] = pkg[i+1:]
			}
		}
	}
	if !strings.Contains(av, ".") {
		// A core kind: no CRD, but the API server's own types decode it
		// strictly, so a misspelt field is named.
		b, _ := json.Marshal(d.Object)
		if _, _, err := strictCore.Decode(b, nil, nil); err != nil {
			m.v.add(where, "", fmt.Sprintf("%s %s: %v", av, kind, err))
		}
		return
	}
	if m.set == nil {
		return
	}
	for _, e := range m.set.Validate(m.ctx, d.Object) {
		if e.Field == "kind" && e.Type == field.ErrorTypeNotSupported && slices.Contains(m.unchecked, strings.SplitN(av, "/", 2)[0]) {
			continue
		}
		if e.Field == "kind" && e.Type == field.ErrorTypeNotSupported {
			m.v.add(where, "kind", fmt.Sprintf("no schema for %s %s: add the CRD that defines it to --schemas (hack/schemas.sh gathers Flux's, Argo CD's and Crossplane's)", av, kind))
			continue
		}
		m.v.add(where, e.Field, e.Error())
	}
}

// kustomization checks that each resource a kustomization.yaml lists exists
// (a file, or a folder with its own kustomization.yaml), as kustomize build
// requires.
func (m *manifests) kustomization(f string) {
	b, err := os.ReadFile(f)
	if err != nil {
		m.v.add(f, "", err.Error())
		return
	}
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		m.v.add(f, "", fmt.Sprintf("not valid YAML: %v", err))
		return
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		m.v.add(f, "kind", fmt.Sprintf("is %s %s; a kustomization.yaml is kustomize.config.k8s.io/v1beta1 Kustomization", k.APIVersion, k.Kind))
	}
	for i, r := range k.Resources {
		p := filepath.Join(filepath.Dir(f), r)
		st, err := os.Stat(p)
		switch {
		case err != nil:
			m.v.add(f, fmt.Sprintf("resources[%d]", i), fmt.Sprintf("resources[%d]: %s does not exist", i, r))
		case st.IsDir() && !exists(filepath.Join(p, "kustomization.yaml")):
			m.v.add(f, fmt.Sprintf("resources[%d]", i), fmt.Sprintf("resources[%d]: folder %s has no kustomization.yaml", i, r))
		}
	}
}

// ownSourceFile is the Flux GitRepository for this repository itself; the
// Kustomizations that use it must name paths that exist here.
const ownSourceFile = "deploy/flux/source.yaml"

// ownAppFile is the Argo CD app of apps; its repoURL is this repository's.
const ownAppFile = "deploy/argocd/root.yaml"

func (m *manifests) crossChecks() {
	own := ""
	for n, d := range m.gitRepos {
		if m.v.rel(d.File) == ownSourceFile {
			own = n
		}
	}
	ks := map[string]bool{}
	for _, d := range m.kustomizations {
		ks[name(d)] = true
	}
	for _, d := range m.kustomizations {
		where := d.Where()
		src, _ := str(d.Object, "spec", "sourceRef", "name")
		if _, ok := m.gitRepos[src]; !ok {
			m.v.add(where, "spec.sourceRef.name", fmt.Sprintf("spec.sourceRef.name: GitRepository %q is defined by no manifest here", src))
		}
		if p, _ := str(d.Object, "spec", "path"); src == own && own != "" {
			if st, err := os.Stat(filepath.Join(m.v.root, p)); err != nil || !st.IsDir() {
				m.v.add(where, "spec.path", fmt.Sprintf("spec.path: %s is not a folder of this repository", p))
			}
		}
		deps, _ := get(d.Object, "spec", "dependsOn").([]any)
		for i, dep := range deps {
			n, _ := str(dep, "name")
			if !ks[n] {
				m.v.add(where, fmt.Sprintf("spec.dependsOn[%d]", i), fmt.Sprintf("spec.dependsOn[%d]: Kustomization %q is defined by no manifest here", i, n))
			}
		}
		exprs, _ := get(d.Object, "spec", "healthCheckExprs").([]any)
		for i, e := range exprs {
			for _, k := range []string{"current", "failed", "inProgress"} {
				if s, ok := str(e, k); ok {
					if err := parseFluxCEL(s); err != nil {
						m.v.add(where, fmt.Sprintf("spec.healthCheckExprs[%d].%s", i, k), fmt.Sprintf("spec.healthCheckExprs[%d].%s: %v", i, k, err))
					}
				}
			}
		}
	}
	for _, d := range m.helmReleases {
		kind, _ := str(d.Object, "spec", "chart", "spec", "sourceRef", "kind")
		src, _ := str(d.Object, "spec", "chart", "spec", "sourceRef", "name")
		if _, ok := m.gitRepos[src]; kind == "GitRepository" && !ok {
			m.v.add(d.Where(), "spec.chart.spec.sourceRef.name", fmt.Sprintf("spec.chart.spec.sourceRef.name: GitRepository %q is defined by no manifest here", src))
		}
	}
	m.argoApps()
	m.configurationDeps()
}

func (m *manifests) argoApps() {
	var ownURL, ownRev string
	for _, d := range m.applications {
		if m.v.rel(d.File) == ownAppFile {
			ownURL, _ = str(d.Object, "spec", "source", "repoURL")
			ownRev, _ = str(d.Object, "spec", "source", "targetRevision")
		}
	}
	if ownURL == "" {
		return
	}
	for _, d := range m.applications {
		url, _ := str(d.Object, "spec", "source", "repoURL")
		if url != ownURL {
			continue
		}
		where := d.Where()
		if p, _ := str(d.Object, "spec", "source", "path"); !dirExists(filepath.Join(m.v.root, p)) {
			m.v.add(where, "spec.source.path", fmt.Sprintf("spec.source.path: %s is not a folder of this repository", p))
		}
		if rev, _ := str(d.Object, "spec", "source", "targetRevision"); rev != ownRev {
			m.v.add(where, "spec.source.targetRevision", fmt.Sprintf("spec.source.targetRevision: %q, but %s follows %q; every application of this repository must follow the same revision", rev, ownAppFile, ownRev))
		}
	}
}

// configurationDeps keeps the Configuration's dependencies equal to what the
// Provider and Function manifests install: two places name the versions, so
// they are compared here.
func (m *manifests) configurationDeps() {
	for _, d := range m.configurations {
		deps, _ := get(d.Object, "spec", "dependsOn").([]any)
		for i, dep := range deps {
			pkg, ok := str(dep, "provider")
			if !ok {
				pkg, ok = str(dep, "function")
			}
			if !ok {
				continue
			}
			ver, _ := str(dep, "version")
			have, installed := m.packages[pkg]
			switch {
			case !installed:
				m.v.add(d.Where(), fmt.Sprintf("spec.dependsOn[%d]", i), fmt.Sprintf("spec.dependsOn[%d]: %s is installed by no Provider or Function manifest here", i, pkg))
			case have != ver:
				m.v.add(d.Where(), fmt.Sprintf("spec.dependsOn[%d].version", i), fmt.Sprintf("spec.dependsOn[%d].version: %s, but the manifest that installs %s pins %s; make them equal", i, ver, pkg, have))
			}
		}
	}
}

// parseFluxCEL parses an expression as kustomize-controller parses
// healthCheckExprs (fluxcd/pkg/runtime/cel, NewExpression without compile):
// the same environment options, parse only, since the object's fields are
// not declared.
func parseFluxCEL(expr string) error {
	env, err := cel.NewEnv(
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Sets(),
		ext.Encoders(),
	)
	if err != nil {
		return fmt.Errorf("cannot create the CEL environment: %w", err)
	}
	if _, iss := env.Parse(expr); iss != nil && iss.Err() != nil {
		return fmt.Errorf("does not parse as CEL: %s", iss.String())
	}
	return nil
}

func name(d repo.Doc) string {
	n, _ := str(d.Object, "metadata", "name")
	return n
}

// get reads the value at path in a decoded object (nil when absent).
func get(obj any, path ...string) any {
	cur := obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

// str reads a string at path in a decoded object.
func str(obj any, path ...string) (string, bool) {
	s, ok := get(obj, path...).(string)
	return s, ok
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
