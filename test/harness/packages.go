package harness

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// PackagesConfig makes the stack install Crossplane's packages as a cluster
// does: Provider, Function and Configuration objects that Crossplane's
// package manager resolves, pulls from a registry and unpacks (CRDs,
// MRDs, XRDs, Compositions), instead of the harness installing their
// contents itself.
//
// What cannot run here is a package's runtime: Crossplane would make a
// Deployment, and this stack has no kubelet. So Crossplane runs with
// --package-runtime=External and the harness is that external runtime: it
// runs the function and the provider as local processes (as it does
// without packages) and reports them on their revisions, as Crossplane's
// Deployment runtime does: the function's endpoint, and RuntimeHealthy
// once the process runs.
type PackagesConfig struct {
	// Registry is the host[:port] the test pushed the packages to.
	Registry string
	// Prefix is the registry the repo's manifests name their packages
	// under (registry.lab.home.arpa); an ImageConfig rewrites it to
	// Registry, as a user points Crossplane at a mirror.
	Prefix string
}

// packagesStep applies the ImageConfig and starts the runtime loop.
func (cp *ControlPlane) packagesStep(ctx context.Context) error {
	pc := cp.cfg.Packages
	if pc == nil {
		return nil
	}
	ic := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "pkg.crossplane.io/v1beta1",
		"kind":       "ImageConfig",
		"metadata":   map[string]any{"name": "e2e-registry"},
		"spec": map[string]any{
			"matchImages":  []any{map[string]any{"type": "Prefix", "prefix": pc.Prefix}},
			"rewriteImage": map[string]any{"prefix": pc.Registry},
		},
	}}
	if err := cp.Apply(ctx, ic); err != nil {
		return fmt.Errorf("cannot point Crossplane at the test registry: %w", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	cp.stopRuntime = cancel
	go cp.packageRuntime(rctx)
	return nil
}

var (
	functionRevisions = schema.GroupVersionKind{Group: "pkg.crossplane.io", Version: "v1", Kind: "FunctionRevisionList"}
	providerRevisions = schema.GroupVersionKind{Group: "pkg.crossplane.io", Version: "v1", Kind: "ProviderRevisionList"}
)

// packageRuntime reports the local processes on the active revisions until
// ctx ends. It polls: revisions change a few times a test.
func (cp *ControlPlane) packageRuntime(ctx context.Context) {
	for {
		if fn := cp.cfg.Function; fn != nil && cp.Function != nil {
			cp.reportRuntime(ctx, functionRevisions, fn.Name, cp.Function, map[string]any{"endpoint": cp.FunctionEndpoint})
		}
		// The stack runs one provider: it is the runtime of whichever
		// Provider package is installed.
		if cp.Provider != nil {
			cp.reportRuntime(ctx, providerRevisions, "", cp.Provider, nil)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// reportRuntime sets status fields and RuntimeHealthy on the active
// revisions of package pkg ("" for any), while its process p runs. Like Crossplane's
// Deployment runtime it also names the package's TLS server Secret in the
// revision's status: Crossplane reads its certificate before it installs a
// package's objects (for CRD conversion webhooks) and waits until it exists.
func (cp *ControlPlane) reportRuntime(ctx context.Context, list schema.GroupVersionKind, pkg string, p *Process, fields map[string]any) {
	if done, _ := p.Exited(); done {
		return
	}
	revs := &unstructured.UnstructuredList{}
	revs.SetGroupVersionKind(list)
	var sel []client.ListOption
	if pkg != "" {
		sel = append(sel, client.MatchingLabels{labelPackage: pkg})
	}
	if err := cp.Client.List(ctx, revs, sel...); err != nil {
		return
	}
	for i := range revs.Items {
		rev := &revs.Items[i]
		if s, _, _ := unstructured.NestedString(rev.Object, "spec", "desiredState"); s != "Active" {
			continue
		}
		name := rev.GetLabels()[labelPackage]
		secret := name + "-tls-server"
		if err := cp.ensureTLSSecret(ctx, secret, name); err != nil {
			continue
		}
		changed := false
		for k, v := range withSecret(fields, secret) {
			if cur, _, _ := unstructured.NestedFieldNoCopy(rev.Object, "status", k); cur != v {
				_ = unstructured.SetNestedField(rev.Object, v, "status", k)
				changed = true
			}
		}
		if ConditionStatus(rev, "RuntimeHealthy") != string(corev1.ConditionTrue) {
			setCondition(rev, map[string]any{
				"type": "RuntimeHealthy", "status": "True", "reason": "HealthyPackageRevision",
				"message":            "run by the test harness as an external package runtime",
				"lastTransitionTime": metav1.Now().UTC().Format(time.RFC3339),
			})
			changed = true
		}
		if changed {
			// A conflict means Crossplane wrote first; the next round retries.
			_ = cp.Client.Status().Update(ctx, rev)
		}
	}
}

// labelPackage names a revision's package (its Provider or Function object).
const labelPackage = "pkg.crossplane.io/package"

func withSecret(fields map[string]any, secret string) map[string]any {
	all := map[string]any{"tlsServerSecretName": secret}
	for k, v := range fields {
		all[k] = v
	}
	return all
}

// ensureTLSSecret makes a Secret holding a server certificate for pkg,
// signed by Crossplane's root CA, unless it exists.
func (cp *ControlPlane) ensureTLSSecret(ctx context.Context, name, pkg string) error {
	sec := &corev1.Secret{}
	err := cp.Client.Get(ctx, types.NamespacedName{Namespace: CrossplaneNamespace, Name: name}, sec)
	if err == nil || !kerrors.IsNotFound(err) {
		return err
	}
	crt, key, err := cp.CrossplaneCA.Issue(CertSpec{CommonName: pkg, Hosts: []string{pkg, "localhost", "127.0.0.1"}, Server: true})
	if err != nil {
		return err
	}
	sec.SetNamespace(CrossplaneNamespace)
	sec.SetName(name)
	sec.Data = map[string][]byte{"tls.crt": crt, "tls.key": key, "ca.crt": cp.CrossplaneCA.CertPEM}
	return client.IgnoreAlreadyExists(cp.Client.Create(ctx, sec))
}

// setCondition replaces the condition of c's type in obj, or adds it.
func setCondition(obj *unstructured.Unstructured, c map[string]any) {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for i, e := range conds {
		if m, ok := e.(map[string]any); ok && m["type"] == c["type"] {
			conds[i] = c
			_ = unstructured.SetNestedSlice(obj.Object, conds, "status", "conditions")
			return
		}
	}
	_ = unstructured.SetNestedSlice(obj.Object, append(conds, c), "status", "conditions")
}
