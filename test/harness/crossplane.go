package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Names Crossplane's Helm chart gives its namespace and Secrets; `core init`
// creates the Secrets from these environment variables.
const (
	CrossplaneNamespace = "crossplane-system"
	RootCASecret        = "crossplane-root-ca"
	ClientTLSSecret     = "crossplane-tls-client"
)

func (cp *ControlPlane) crossplaneEnv(extra ...string) []string {
	return cp.baseEnv(append([]string{
		"KUBECONFIG=" + cp.Kubeconfig,
		"POD_NAMESPACE=" + CrossplaneNamespace,
		"POD_SERVICE_ACCOUNT=crossplane",
		// No webhook server: there is no Service to route to it, and
		// Crossplane v2 validates its own types with CEL.
		"ENABLE_WEBHOOKS=false",
		"TLS_CA_SECRET_NAME=" + RootCASecret,
		"TLS_CLIENT_SECRET_NAME=" + ClientTLSSecret,
	}, extra...)...)
}

// startCrossplane runs `crossplane core init` until it succeeds, then
// `crossplane core start`.
func (cp *ControlPlane) startCrossplane(ctx context.Context) error {
	ns := &corev1.Namespace{}
	ns.SetName(CrossplaneNamespace)
	if err := cp.Client.Create(ctx, ns); client.IgnoreAlreadyExists(err) != nil {
		return fmt.Errorf("cannot create namespace %s: %w", CrossplaneNamespace, err)
	}
	bin := filepath.Join(cp.cfg.ToolsBin, "crossplane")
	crds := filepath.Join(cp.cfg.ToolsBin, "crossplane-crds")
	if _, err := os.Stat(crds); err != nil {
		return fmt.Errorf("cannot find Crossplane's CRDs beside the binary (hack/build-tools.sh copies them there): %w", err)
	}

	// On a fresh apiserver, init sometimes fails once with `no matches for
	// kind "Lock"`: the Lock CRD it has just created is not served yet.
	var initErr error
	for attempt := 1; attempt <= 5; attempt++ {
		name := fmt.Sprintf("crossplane-init-%d", attempt)
		p, err := StartProcess(name, filepath.Join(cp.logDir(), name+".log"), cp.crossplaneEnv("CRDS_PATH="+crds), bin, "core", "init")
		if err != nil {
			return err
		}
		cp.oneShots = append(cp.oneShots, p)
		select {
		case <-p.exited:
		case <-ctx.Done():
			p.Stop(time.Second)
			return ctx.Err()
		case <-time.After(2 * time.Minute):
			p.Stop(time.Second)
		}
		_, initErr = p.Exited()
		if initErr == nil {
			break
		}
		cp.cfg.Logf("harness: crossplane core init attempt %d failed (%v), retrying", attempt, initErr)
		time.Sleep(time.Duration(attempt) * 500 * time.Millisecond)
	}
	if initErr != nil {
		return fmt.Errorf("crossplane core init failed 5 times: %w", initErr)
	}

	// Mount the client Secret the way the Helm chart does, as files.
	sec := &corev1.Secret{}
	if err := cp.Client.Get(ctx, types.NamespacedName{Namespace: CrossplaneNamespace, Name: ClientTLSSecret}, sec); err != nil {
		return fmt.Errorf("cannot read Secret %s: %w", ClientTLSSecret, err)
	}
	clientDir := filepath.Join(cp.Dir, "crossplane", "tls-client")
	if err := WriteTLSDir(clientDir, sec.Data["tls.crt"], sec.Data["tls.key"], sec.Data["ca.crt"]); err != nil {
		return err
	}
	ca := &corev1.Secret{}
	if err := cp.Client.Get(ctx, types.NamespacedName{Namespace: CrossplaneNamespace, Name: RootCASecret}, ca); err != nil {
		return fmt.Errorf("cannot read Secret %s: %w", RootCASecret, err)
	}
	xpca, err := ParseCA(ca.Data["tls.crt"], ca.Data["tls.key"])
	if err != nil {
		return fmt.Errorf("cannot use Crossplane's root CA: %w", err)
	}
	cp.CrossplaneCA = xpca

	ports, err := testenv.FreePorts(2)
	if err != nil {
		return err
	}
	metrics, health := ports[0], ports[1]
	args := append([]string{"core", "start"}, cp.cfg.CrossplaneArgs...)
	if cp.cfg.Debug {
		args = append(args, "--debug")
	}
	// The package cache is an emptyDir in the chart's pod; Crossplane does
	// not make it, and unpacking fails without it.
	xpkgCache := filepath.Join(cp.Dir, "crossplane", "xpkg")
	if err := os.MkdirAll(xpkgCache, 0o700); err != nil {
		return fmt.Errorf("cannot create Crossplane's package cache: %w", err)
	}
	var runtimeEnv []string
	if cp.cfg.Packages != nil {
		// No Deployments for package runtimes: the harness is the runtime.
		runtimeEnv = append(runtimeEnv, "PACKAGE_RUNTIME=External")
	}
	xp, err := cp.start("crossplane", cp.crossplaneEnv(append(runtimeEnv,
		"TLS_CLIENT_CERTS_DIR="+clientDir,
		"XPKG_CACHE_DIR="+xpkgCache,
		"METRICS_PORT="+strconv.Itoa(metrics),
		"HEALTH_PROBE_PORT="+strconv.Itoa(health),
	)...), bin, args...)
	if err != nil {
		return err
	}
	err = poll(ctx, 60*time.Second, func(ctx context.Context) (bool, error) {
		return httpOK(ctx, http.DefaultClient, "http://127.0.0.1:"+strconv.Itoa(health)+"/readyz")
	}, xp)
	if err != nil {
		return fmt.Errorf("crossplane is not ready: %w", err)
	}
	return nil
}

// startFunction serves the composition function over mTLS and registers it
// with Crossplane. Core has no switch for a function at a local address, so
// the harness does what the package manager would: an active
// FunctionRevision, labelled with the function's name, whose status carries
// the endpoint. It is paused so the package manager never tries to pull or
// deploy its image.
func (cp *ControlPlane) startFunction(ctx context.Context) error {
	fn := cp.cfg.Function
	if fn == nil {
		return nil
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := cp.CrossplaneCA.Issue(CertSpec{
		CommonName: fn.Name,
		Hosts:      []string{"127.0.0.1", "localhost"},
		Server:     true,
	})
	if err != nil {
		return err
	}
	tlsDir := filepath.Join(cp.Dir, "function", "tls")
	// ca.crt is the CA the function trusts for client certificates:
	// Crossplane's client certificate is signed by the same root CA.
	if err := WriteTLSDir(tlsDir, certPEM, keyPEM, cp.CrossplaneCA.CertPEM); err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{"--address=" + addr, "--tls-server-certs-dir=" + tlsDir}, fn.Args...)
	if cp.cfg.Debug {
		args = append(args, "--debug")
	}
	p, err := cp.start(fn.Name, cp.baseEnv(), fn.Binary, args...)
	if err != nil {
		return err
	}
	cp.Function = p
	cp.FunctionEndpoint = addr
	if err := WaitTCP(ctx, addr, 30*time.Second, p); err != nil {
		return fmt.Errorf("function %s: %w", fn.Name, err)
	}
	if cp.cfg.Packages != nil {
		// The Function object's own revision gets the endpoint (packages.go).
		return nil
	}

	rev := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "pkg.crossplane.io/v1",
		"kind":       "FunctionRevision",
		"metadata": map[string]any{
			"name":        fn.Name + "-e2e",
			"labels":      map[string]any{"pkg.crossplane.io/package": fn.Name},
			"annotations": map[string]any{"crossplane.io/paused": "true"},
		},
		"spec": map[string]any{
			// Never pulled: the revision is paused.
			"image":        "local.invalid/" + fn.Name + ":e2e",
			"revision":     int64(1),
			"desiredState": "Active",
		},
	}}
	if err := cp.Apply(ctx, rev); err != nil {
		return err
	}
	status := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "pkg.crossplane.io/v1",
		"kind":       "FunctionRevision",
		"metadata":   map[string]any{"name": rev.GetName()},
		"status": map[string]any{
			"endpoint":     addr,
			"capabilities": []any{"composition"},
		},
	}}
	if err := cp.Client.Status().Patch(ctx, status, client.Merge); err != nil {
		return fmt.Errorf("cannot set the endpoint of FunctionRevision %s: %w", rev.GetName(), err)
	}
	return nil
}

// applyManifests applies the configured files and waits for each XRD to be
// Established and, when it has a claim kind, Offered.
func (cp *ControlPlane) applyManifests(ctx context.Context) error {
	for _, path := range cp.cfg.Manifests {
		objs, err := cp.ApplyFile(ctx, path)
		if err != nil {
			return err
		}
		for _, o := range objs {
			if o.GetKind() != "CompositeResourceDefinition" {
				continue
			}
			if err := cp.WaitXRD(ctx, o.GetName()); err != nil {
				return err
			}
		}
	}
	return nil
}

// WaitXRD waits until Crossplane serves the XRD's composite kind and, if it
// has one, its claim kind.
func (cp *ControlPlane) WaitXRD(ctx context.Context, name string) error {
	var xrd *unstructured.Unstructured
	err := poll(ctx, 60*time.Second, func(ctx context.Context) (bool, error) {
		xrd = &unstructured.Unstructured{}
		xrd.SetAPIVersion("apiextensions.crossplane.io/v1")
		xrd.SetKind("CompositeResourceDefinition")
		if err := cp.Client.Get(ctx, types.NamespacedName{Name: name}, xrd); err != nil {
			return false, err
		}
		if ConditionStatus(xrd, "Established") != "True" {
			return false, fmt.Errorf("XRD %s is not Established: %v", name, Condition(xrd, "Established"))
		}
		if _, hasClaim, _ := unstructured.NestedMap(xrd.Object, "spec", "claimNames"); hasClaim && ConditionStatus(xrd, "Offered") != "True" {
			return false, fmt.Errorf("XRD %s is not Offered: %v", name, Condition(xrd, "Offered"))
		}
		return true, nil
	}, cp.procs...)
	if err != nil {
		return fmt.Errorf("cannot see XRD %s served: %w", name, err)
	}
	return nil
}
