package harness

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Argo is the real Argo Workflows controller (workflow-controller, built
// from the module proxy by hack/build-rollout.sh argo) watching one
// namespace, as a process; its steps run as pods on the stack's node, with
// the real argoexec (the executor image) beside each step's container.
type Argo struct {
	Namespace string
	Proc      *Process
	cp        *ControlPlane
	cfg       ArgoConfig
	starts    int
}

// ArgoConfig says what to run.
type ArgoConfig struct {
	// Bin holds workflow-controller and crds-minimal/ (the CRDs Argo's
	// install manifests apply).
	Bin string
	// Namespace is where workflows run (the controller's only one).
	Namespace string
	// ExecutorImage is argoexec's image, as the node pulls it.
	ExecutorImage string
	// RequeueTime is the controller's DEFAULT_REQUEUE_TIME [Argo's 10s]:
	// every requeue of a workflow (a pod's or a task result's change, a
	// node still running) waits this long, so with the default each step
	// of a workflow costs its pod's time rounded up to ten seconds, and a
	// pod that ends is noticed up to ten seconds late. Argo's own e2e
	// tests run with 1s (its Makefile: "by keeping this short we speed up
	// tests"; workflow/controller/rate_limiters.go says 1s is the least
	// that keeps the informers up to date).
	RequeueTime time.Duration
}

// StartArgo installs Argo's CRDs and the namespace, and starts the
// controller.
func (cp *ControlPlane) StartArgo(ctx context.Context, c ArgoConfig) (*Argo, error) {
	crds, err := filepath.Glob(filepath.Join(c.Bin, "crds-minimal", "argoproj.io_*.yaml"))
	if err != nil || len(crds) == 0 {
		return nil, fmt.Errorf("cannot find Argo's CRDs in %s/crds-minimal (hack/build-rollout.sh argo puts them there): %v", c.Bin, err)
	}
	for _, f := range crds {
		if _, err := cp.ApplyFile(ctx, f); err != nil {
			return nil, err
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.Namespace}}
	if err := cp.Client.Create(ctx, ns); client.IgnoreAlreadyExists(err) != nil {
		return nil, fmt.Errorf("cannot create namespace %s: %w", c.Namespace, err)
	}
	// The controller's configuration (docs/workflow-controller-configmap.md):
	// no metrics server, whose default port 9090 is anybody's.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "workflow-controller-configmap", Namespace: c.Namespace},
		Data: map[string]string{"metricsConfig": "enabled: false\n"}}
	if err := cp.Client.Create(ctx, cm); client.IgnoreAlreadyExists(err) != nil {
		return nil, fmt.Errorf("cannot create the controller's ConfigMap: %w", err)
	}
	a := &Argo{Namespace: c.Namespace, cp: cp, cfg: c}
	return a, a.start(ctx)
}

// Restart stops the controller (as a rollout of its Deployment or a crash
// would) and starts a new one, which rebuilds its state (locks held and
// waited for included) from the workflows' status.
func (a *Argo) Restart(ctx context.Context) error {
	a.Proc.Stop(10 * time.Second)
	return a.start(ctx)
}

func (a *Argo) start(ctx context.Context) error {
	a.starts++
	// Outside a cluster, as ../shared/rollouts/README.md ran it: one
	// instance (no leader election), namespaced.
	env := a.cp.baseEnv("LEADER_ELECTION_DISABLE=true")
	if a.cfg.RequeueTime > 0 {
		env = append(env, "DEFAULT_REQUEUE_TIME="+a.cfg.RequeueTime.String())
	}
	p, err := a.cp.start(fmt.Sprintf("workflow-controller-%d", a.starts), env,
		filepath.Join(a.cfg.Bin, "workflow-controller"),
		"--kubeconfig="+a.cp.Kubeconfig, "--namespace="+a.cfg.Namespace,
		"--namespaced", "--managed-namespace="+a.cfg.Namespace,
		"--executor-image="+a.cfg.ExecutorImage, "--executor-image-pull-policy=IfNotPresent")
	if err != nil {
		return err
	}
	a.Proc = p
	// Its health endpoint (fixed port 6060, cmd/workflow-controller) answers
	// once it runs and its informer lists the namespace's workflows.
	hc := &http.Client{Timeout: 2 * time.Second}
	err = poll(ctx, 2*time.Minute, func(ctx context.Context) (bool, error) {
		if !strings.Contains(p.Tail(200), "Starting Workflow Controller") {
			return false, nil
		}
		return httpOK(ctx, hc, "http://127.0.0.1:6060/healthz")
	}, p)
	if err != nil {
		return fmt.Errorf("workflow-controller did not start: %w\n%s", err, p.Tail(30))
	}
	return nil
}
