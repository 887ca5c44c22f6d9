//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
	"github.com/homelab-infra/homelab-infra/test/harness"
)

var (
	gvkGitRepository = schema.GroupVersionKind{Group: "source.toolkit.fluxcd.io", Version: "v1", Kind: "GitRepository"}
	gvkKustomization = schema.GroupVersionKind{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Kind: "Kustomization"}
)

// fluxBin is the folder of Flux's controllers: $FLUX_BIN as make e2e sets
// it, or what hack/build-flux.sh prints (instant when its cache is warm).
func fluxBin(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("FLUX_BIN"); b != "" {
		return b
	}
	return scriptOutput(t, "build-flux.sh")
}

// schemasDir is what hack/schemas.sh prints: the CRDs of the pinned Flux,
// Argo CD and Crossplane modules.
func schemasDir(t testing.TB) string {
	t.Helper()
	return scriptOutput(t, "schemas.sh")
}

func scriptOutput(t testing.TB, script string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(t), "hack", script))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hack/%s: %v", script, err)
	}
	return strings.TrimSpace(string(out))
}

// gitRemote is a copy of this repo's crossplane/ and deploy/ folders,
// committed and served over smart HTTP (the real git http-backend) on
// loopback, behind a token: what a user pushes and points Flux at.
type gitRemote struct {
	work, bare string
	url, token string
}

func newGitRemote(t *testing.T) *gitRemote {
	t.Helper()
	testenv.LookPath(t, "git")
	dir := t.TempDir()
	r := &gitRemote{work: filepath.Join(dir, "work"), bare: filepath.Join(dir, "srv", "homelab-infra.git"), token: "flux-e2e-token"}
	src := testenv.RepoRoot(t)
	for _, d := range []string{"crossplane", "deploy"} {
		testenv.CopyTree(t, filepath.Join(src, d), filepath.Join(r.work, d))
	}
	git(t, r.work, "init", "-q", "-b", "main")
	git(t, filepath.Dir(r.bare), "init", "-q", "--bare", "-b", "main", r.bare)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: &testflake.Server{Root: filepath.Dir(r.bare), Token: r.token}, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	r.url = "http://" + l.Addr().String() + "/homelab-infra.git"
	return r
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := testflake.Git(dir, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// commit runs edit in the working copy, then commits and pushes every
// change, and returns the commit.
func (r *gitRemote) commit(t *testing.T, msg string, edit func(work string)) string {
	t.Helper()
	edit(r.work)
	git(t, r.work, "add", "-A")
	git(t, r.work, "commit", "-q", "-m", msg)
	git(t, r.work, "push", "-q", r.bare, "HEAD:refs/heads/main")
	return git(t, r.work, "rev-parse", "HEAD")
}

// replaceIn edits a file of the working copy, failing if old is absent.
func replaceIn(t *testing.T, work, file, old, new string) {
	t.Helper()
	p := filepath.Join(work, file)
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

// reconcileNow asks Flux to reconcile an object at once, as `flux reconcile`
// does, instead of waiting for its interval.
func reconcileNow(t *testing.T, cp *harness.ControlPlane, gvk schema.GroupVersionKind, name string) {
	t.Helper()
	o := newObject(gvk)
	o.SetNamespace(harness.FluxNamespace)
	o.SetName(name)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"reconcile.fluxcd.io/requestedAt":%q}}}`, time.Now().Format(time.RFC3339Nano))
	if err := cp.Client.Patch(ctxFor(t), o, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		t.Fatalf("cannot request a reconcile of %s %s: %v", gvk.Kind, name, err)
	}
}

// kustomizationAt is a waitFor condition: the Kustomization has applied
// revision rev (any when "") and its Ready condition has the given status
// with a message containing msg.
func kustomizationAt(cp *harness.ControlPlane, name, rev, ready, msg string) func(ctx context.Context) (bool, string, error) {
	return func(ctx context.Context) (bool, string, error) {
		k, err := get(ctx, cp, gvkKustomization, harness.FluxNamespace, name)
		if err != nil {
			return false, err.Error(), nil
		}
		c := harness.Condition(k, "Ready")
		attempted, _, _ := unstructured.NestedString(k.Object, "status", "lastAttemptedRevision")
		ok := c != nil && c["status"] == ready && strings.Contains(fmt.Sprint(c["message"]), msg) &&
			(rev == "" || strings.HasSuffix(attempted, rev))
		return ok, fmt.Sprintf("attempted %s; %s", attempted, conditionsString(k)), nil
	}
}

// TestFluxAppliesTheRepo runs the seed's GitOps loop with real Flux
// (source- and kustomize-controller) on a stack where Crossplane installs
// everything from packages: the user's set-up from the README (the Git
// and Proxmox Secrets, the GitRepository and one Kustomization pointing at
// deploy/flux), then a new claim committed, a claim deleted, and bad claims.
//
// What the harness stands in for: deploy/flux/crossplane.yaml installs
// Crossplane with Helm, whose pods cannot run here; the harness runs
// Crossplane core itself (and is the runtime of the provider and function
// packages), so that one Kustomization is left out of the test's copy and
// the platform's dependency on it is dropped. Everything else is the
// repo's own, applied by Flux from Git.
func TestFluxAppliesTheRepo(t *testing.T) {
	cp, _ := packagedStack(t)
	ctx := ctxFor(t)
	if err := cp.StartFlux(ctx, harness.FluxConfig{Bin: fluxBin(t), CRDsDir: filepath.Join(schemasDir(t), "crds", "flux")}); err != nil {
		t.Fatal(err)
	}
	remote := newGitRemote(t)
	remote.commit(t, "homelab-infra, pointed at its Git server", func(work string) {
		// What a user sets once: where the repository lives.
		replaceIn(t, work, "deploy/flux/source.yaml", "url: https://git.lab.home.arpa/homelab-infra", "url: "+remote.url)
		// The stand-in (see the test's comment): no Helm install of Crossplane.
		replaceIn(t, work, "deploy/flux/kustomization.yaml", "  - crossplane.yaml\n", "")
		replaceIn(t, work, "deploy/flux/platform.yaml", "  dependsOn:\n    - name: crossplane\n", "")
	})

	// The user's part, out of band (README): the Git credentials, then the
	// source and the one Kustomization `flux create` would make.
	gitSecret := &corev1.Secret{StringData: map[string]string{"username": "git", "password": remote.token}}
	gitSecret.SetNamespace(harness.FluxNamespace)
	gitSecret.SetName("homelab-infra-git")
	if err := cp.Client.Create(ctx, gitSecret); err != nil {
		t.Fatal(err)
	}
	for _, o := range []*unstructured.Unstructured{
		{Object: map[string]any{
			"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
			"metadata": map[string]any{"name": "homelab-infra", "namespace": harness.FluxNamespace},
			"spec": map[string]any{"interval": "1m", "url": remote.url, "ref": map[string]any{"branch": "main"},
				"secretRef": map[string]any{"name": "homelab-infra-git"}},
		}},
		{Object: map[string]any{
			"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
			"metadata": map[string]any{"name": "homelab-infra", "namespace": harness.FluxNamespace},
			"spec": map[string]any{"interval": "10m", "path": "./deploy/flux", "prune": true,
				"sourceRef": map[string]any{"kind": "GitRepository", "name": "homelab-infra"}},
		}},
	} {
		if err := cp.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	// The chain: platform (packages, XRD, Composition), ProviderConfig, claims.
	for _, k := range []string{"homelab-infra", "crossplane-platform", "crossplane-providerconfig", "machines"} {
		took := waitWithin(t, 5*time.Minute, "Kustomization "+k+" Ready", kustomizationAt(cp, k, "", "True", ""))
		t.Logf("Kustomization %s Ready after %s more", k, took.Round(time.Second))
	}
	for _, name := range []string{"dns01", "docker01"} {
		waitComposed(t, cp, "infra-machines", name)
	}

	// A new claim in Git becomes a claim, an XR and its VM resources.
	rev := remote.commit(t, "web01: a new machine", func(work string) {
		b, err := os.ReadFile(filepath.Join(work, "crossplane/claims/dns01.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		web := strings.NewReplacer("name: dns01", "name: web01", "hostname: dns01", "hostname: web01",
			"ip: 10.0.10.53", "ip: 10.0.10.80", "vmId: 1053", "vmId: 1080", "#dns01", "#web01").Replace(string(b))
		if err := os.WriteFile(filepath.Join(work, "crossplane/claims/web01.yaml"), []byte(web), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	reconcileNow(t, cp, gvkGitRepository, "homelab-infra")
	reconcileNow(t, cp, gvkKustomization, "machines")
	waitWithin(t, 3*time.Minute, "Kustomization machines at "+rev[:8], kustomizationAt(cp, "machines", rev, "True", ""))
	waitComposed(t, cp, "infra-machines", "web01")

	// Deleting the file deletes the claim, its XR and its VM resources, and
	// nothing else.
	xr := xrOf(t, cp, "infra-machines", "web01")
	rev = remote.commit(t, "web01: gone", func(work string) {
		if err := os.Remove(filepath.Join(work, "crossplane/claims/web01.yaml")); err != nil {
			t.Fatal(err)
		}
	})
	reconcileNow(t, cp, gvkGitRepository, "homelab-infra")
	reconcileNow(t, cp, gvkKustomization, "machines")
	waitWithin(t, 3*time.Minute, "web01's claim, XR and VM resources pruned", func(ctx context.Context) (bool, string, error) {
		var left []string
		if _, err := get(ctx, cp, gvkMachine, "infra-machines", "web01"); err == nil {
			left = append(left, "claim")
		}
		if _, err := get(ctx, cp, gvkXMachine, "", xr.GetName()); err == nil {
			left = append(left, "XR")
		}
		for _, gvk := range []schema.GroupVersionKind{gvkVM, gvkFile} {
			items, err := composedOf(ctx, cp, gvk, "infra-machines", "web01")
			if err != nil {
				return false, "", err
			}
			if len(items) > 0 {
				left = append(left, gvk.Kind)
			}
		}
		return len(left) == 0, "still there: " + strings.Join(left, ", "), nil
	})
	for _, name := range []string{"dns01", "docker01"} {
		if _, err := get(ctx, cp, gvkMachine, "infra-machines", name); err != nil {
			t.Errorf("pruning web01 touched %s: %v", name, err)
		}
	}

	// A claim the API server refuses (a VLAN out of range, caught by the
	// XRD's schema) fails the whole revision, as Flux applies a revision
	// atomically: the Kustomization says which claim and field, and the
	// claims already applied stay as they are.
	rev = remote.commit(t, "dns01: a VLAN that cannot exist", func(work string) {
		replaceIn(t, work, "crossplane/claims/dns01.yaml", "vlan: 10", "vlan: 5000")
	})
	reconcileNow(t, cp, gvkGitRepository, "homelab-infra")
	reconcileNow(t, cp, gvkKustomization, "machines")
	waitWithin(t, 3*time.Minute, "Kustomization machines to refuse the bad VLAN", kustomizationAt(cp, "machines", rev, "False", "spec.proxmox.vlan"))
	for _, name := range []string{"dns01", "docker01"} {
		c, err := get(ctx, cp, gvkMachine, "infra-machines", name)
		if err != nil {
			t.Fatalf("claim %s is gone after a refused revision: %v", name, err)
		}
		if v, _, _ := unstructured.NestedInt64(c.Object, "spec", "proxmox", "vlan"); name == "dns01" && v != 10 {
			t.Errorf("dns01's vlan is %d after a refused revision; want 10", v)
		}
	}

	// A claim the schema admits but the function refuses (an unknown class)
	// is applied; the Machine health check then fails the Kustomization with
	// the function's message, naming the field. The other claims' edits in
	// the same revision are applied all the same.
	rev = remote.commit(t, "dns01: back to a good VLAN, but an unknown class; docker01: a new tag", func(work string) {
		replaceIn(t, work, "crossplane/claims/dns01.yaml", "vlan: 5000", "vlan: 10")
		replaceIn(t, work, "crossplane/claims/dns01.yaml", "class: small", "class: huge")
		replaceIn(t, work, "crossplane/claims/docker01.yaml", "tags: [apps]", "tags: [apps, gitops]")
	})
	reconcileNow(t, cp, gvkGitRepository, "homelab-infra")
	reconcileNow(t, cp, gvkKustomization, "machines")
	// Flux checks health right after it applies, possibly before Crossplane
	// has run the function on the edit; the refusal then shows at the next
	// reconcile, which the test asks for instead of waiting the interval.
	next := time.Now()
	reported := kustomizationAt(cp, "machines", rev, "False", "Machine/infra-machines/dns01")
	waitWithin(t, 3*time.Minute, "Kustomization machines to report the refused class", func(ctx context.Context) (bool, string, error) {
		ok, why, err := reported(ctx)
		if !ok && err == nil && time.Since(next) > 15*time.Second {
			reconcileNow(t, cp, gvkKustomization, "machines")
			next = time.Now()
		}
		return ok, why, err
	})
	waitFor(t, "dns01 Valid=False naming spec.class", claimValid(cp, "infra-machines", "dns01", "False", "spec.class"))
	waitWithin(t, time.Minute, "docker01's new tag applied beside the refused claim", func(ctx context.Context) (bool, string, error) {
		c, err := get(ctx, cp, gvkMachine, "infra-machines", "docker01")
		if err != nil {
			return false, "", err
		}
		tags, _, _ := unstructured.NestedStringSlice(c.Object, "spec", "tags")
		return slices.Contains(tags, "gitops"), fmt.Sprintf("tags %v", tags), nil
	})
}
