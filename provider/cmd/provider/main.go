// Command provider is homelab-infra's Crossplane provider for Proxmox VE:
// Upjet's generated controllers for the VirtualMachine and File kinds,
// calling bpg's Terraform provider in-process (no-fork mode: no terraform
// CLI, no plugin process, no workspace folder).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	xpcontroller "github.com/crossplane/crossplane-runtime/v2/pkg/controller"
	"github.com/crossplane/crossplane-runtime/v2/pkg/feature"
	"github.com/crossplane/crossplane-runtime/v2/pkg/gate"
	"github.com/crossplane/crossplane-runtime/v2/pkg/logging"
	"github.com/crossplane/crossplane-runtime/v2/pkg/ratelimiter"
	"github.com/crossplane/crossplane-runtime/v2/pkg/reconciler/customresourcesgate"
	"github.com/crossplane/crossplane-runtime/v2/pkg/reconciler/managed"
	"github.com/crossplane/crossplane-runtime/v2/pkg/statemetrics"
	tjcontroller "github.com/crossplane/upjet/v2/pkg/controller"
	authv1 "k8s.io/api/authorization/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/homelab-infra/homelab-infra/provider/apis"
	"github.com/homelab-infra/homelab-infra/provider/config"
	"github.com/homelab-infra/homelab-infra/provider/internal/clients"
	"github.com/homelab-infra/homelab-infra/provider/internal/controller"
	"github.com/homelab-infra/homelab-infra/provider/internal/features"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "provider: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		debug        = flag.Bool("debug", false, "Log at debug level.")
		syncPeriod   = flag.Duration("sync", time.Hour, "How often every watched object is re-listed.")
		pollInterval = flag.Duration("poll", 10*time.Minute, "How often a managed resource is checked for drift.")
		maxRate      = flag.Int("max-reconcile-rate", 10, "Reconciles per second at most, and each controller's concurrency.")
		leaderElect  = flag.Bool("leader-election", os.Getenv("LEADER_ELECTION") == "true", "Use leader election.")
		metricsAddr  = flag.String("metrics-bind-address", envOr("METRICS_BIND_ADDRESS", ":8080"), "Where the metrics server listens.")
		certsDir     = flag.String("certs-dir", envOr("TLS_SERVER_CERTS_DIR", "/tls/server"), "The webhook server's key and certificate; empty turns webhooks off.")
	)
	flag.Parse()

	zl := zap.New(zap.UseDevMode(*debug))
	log := logging.NewLogrLogger(zl.WithName("provider-proxmox"))
	ctrl.SetLogger(zl)

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("cannot get the API server's config: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		LeaderElection:   *leaderElect,
		LeaderElectionID: "crossplane-leader-election-provider-proxmox-homelab",
		Cache:            cache.Options{SyncPeriod: syncPeriod},
		Metrics:          metricsserver.Options{BindAddress: *metricsAddr},
		WebhookServer:    webhook.NewServer(webhook.Options{CertDir: *certsDir}),
	})
	if err != nil {
		return fmt.Errorf("cannot create the controller manager: %w", err)
	}
	for _, add := range []func(*runtime.Scheme) error{apis.AddToScheme, apiextensionsv1.AddToScheme, authv1.AddToScheme} {
		if err := add(mgr.GetScheme()); err != nil {
			return fmt.Errorf("cannot register the provider's kinds: %w", err)
		}
	}

	pc, err := config.GetProvider()
	if err != nil {
		return err
	}
	mrMetrics, stateMetrics := managed.NewMRMetricRecorder(), statemetrics.NewMRStateMetrics()
	metrics.Registry.MustRegister(mrMetrics, stateMetrics)
	o := tjcontroller.Options{
		Options: xpcontroller.Options{
			Logger:                  log,
			GlobalRateLimiter:       ratelimiter.NewGlobal(*maxRate),
			PollInterval:            *pollInterval,
			MaxConcurrentReconciles: *maxRate,
			Features:                &feature.Flags{},
			MetricOptions: &xpcontroller.MetricOptions{
				PollStateMetricInterval: 5 * time.Second,
				MRMetrics:               mrMetrics,
				MRStateMetrics:          stateMetrics,
			},
		},
		Provider:              pc,
		OperationTrackerStore: tjcontroller.NewOperationStore(log),
		SetupFn:               clients.TerraformSetupBuilder(&clients.Configurer{New: config.BPGProvider}),
		StartWebhooks:         *certsDir != "",
	}
	// The Machine API leaves LateInitialize out of its resources' policies.
	o.Features.Enable(features.EnableBetaManagementPolicies)

	// SafeStart: where the provider may watch CRDs, each controller starts
	// once Crossplane has made its kind a CRD (an activation policy names
	// the kinds a cluster uses); elsewhere all start at once.
	watch, err := canWatchCRDs(context.Background(), mgr.GetClient())
	if err != nil {
		return err
	}
	if watch {
		o.Gate = new(gate.Gate[schema.GroupVersionKind])
		if err := customresourcesgate.Setup(mgr, xpcontroller.Options{Logger: log, Gate: o.Gate, MaxConcurrentReconciles: 1}); err != nil {
			return fmt.Errorf("cannot set up the CRD gate: %w", err)
		}
		err = controller.SetupGated(mgr, o)
	} else {
		err = controller.Setup(mgr, o)
	}
	if err != nil {
		return fmt.Errorf("cannot set up the controllers: %w", err)
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}

// canWatchCRDs asks the API server whether the provider may get, list and
// watch CRDs.
func canWatchCRDs(ctx context.Context, c client.Client) (bool, error) {
	for _, verb := range []string{"get", "list", "watch"} {
		sar := &authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authv1.ResourceAttributes{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions", Verb: verb},
		}}
		if err := c.Create(ctx, sar); err != nil {
			return false, fmt.Errorf("cannot ask whether the provider may %s CRDs: %w", verb, err)
		}
		if !sar.Status.Allowed {
			return false, nil
		}
	}
	return true, nil
}

func envOr(k, def string) string {
	if v, ok := os.LookupEnv(k); ok {
		return v
	}
	return def
}
