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
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FluxNamespace is where Flux runs and keeps its objects, as `flux install`
// makes it.
const FluxNamespace = "flux-system"

// FluxConfig says where real Flux comes from.
type FluxConfig struct {
	// Bin holds source-controller and kustomize-controller (hack/build-flux.sh).
	Bin string
	// CRDsDir holds Flux's CRDs (hack/schemas.sh's crds/flux).
	CRDsDir string
}

// StartFlux runs real Flux against the stack, as `flux install` runs it in a
// cluster, but outside one: source-controller (fetches GitRepositories and
// serves their artifacts over HTTP on loopback) and kustomize-controller
// (builds and applies Kustomizations), with Flux's CRDs installed first.
// Neither has a --kubeconfig flag; both read KUBECONFIG. Every address they
// would bind on all interfaces is set to a loopback port, and events go
// nowhere (there is no notification-controller).
func (cp *ControlPlane) StartFlux(ctx context.Context, cfg FluxConfig) error {
	t := time.Now()
	paths, err := filepath.Glob(filepath.Join(cfg.CRDsDir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		return fmt.Errorf("cannot find Flux's CRDs in %s (hack/schemas.sh gathers them): %v", cfg.CRDsDir, err)
	}
	for _, p := range paths {
		// ApplyFile waits until each CRD is Established.
		if _, err := cp.ApplyFile(ctx, p); err != nil {
			return fmt.Errorf("cannot install Flux's CRDs: %w", err)
		}
	}
	ns := &corev1.Namespace{}
	ns.SetName(FluxNamespace)
	if err := cp.Client.Create(ctx, ns); client.IgnoreAlreadyExists(err) != nil {
		return fmt.Errorf("cannot create namespace %s: %w", FluxNamespace, err)
	}

	// source-controller refuses a storage folder that does not exist.
	storage := filepath.Join(cp.Dir, "flux-artifacts")
	if err := os.MkdirAll(storage, 0o700); err != nil {
		return fmt.Errorf("cannot create Flux's artifact storage: %w", err)
	}
	ports, err := testenv.FreePorts(5)
	if err != nil {
		return err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	env := cp.baseEnv("KUBECONFIG="+cp.Kubeconfig, "RUNTIME_NAMESPACE="+FluxNamespace)
	src, err := cp.start("source-controller", env, filepath.Join(cfg.Bin, "source-controller"),
		"--storage-path="+storage,
		"--storage-addr="+addr(0), "--storage-adv-addr="+addr(0),
		"--metrics-addr="+addr(1), "--health-addr="+addr(2),
		"--events-addr=",
		"--log-level=debug",
	)
	if err != nil {
		return err
	}
	kc, err := cp.start("kustomize-controller", env, filepath.Join(cfg.Bin, "kustomize-controller"),
		"--metrics-addr="+addr(3), "--health-addr="+addr(4),
		"--events-addr=",
		"--log-level=debug",
	)
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, c := range []struct {
		p    *Process
		port int
	}{{src, ports[2]}, {kc, ports[4]}} {
		url := fmt.Sprintf("http://127.0.0.1:%d/readyz", c.port)
		if err := poll(ctx, 60*time.Second, func(ctx context.Context) (bool, error) { return httpOK(ctx, hc, url) }, c.p); err != nil {
			return fmt.Errorf("%s is not ready: %w", c.p.Name, err)
		}
	}
	cp.cfg.Logf("harness: flux ready in %s", time.Since(t).Round(time.Millisecond))
	return nil
}
