package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ProviderConfig runs our Proxmox provider (provider/, Upjet no-fork over
// bpg's Terraform provider) against the stack: every VirtualMachine and File
// goes through bpg's Go code, in the provider's own process, to whatever
// Proxmox API its credentials point at.
type ProviderConfig struct {
	// Bin is the folder hack/build-provider.sh prints, holding provider.
	Bin string
	// ProviderConfigFile is the ProviderConfig to apply, as users apply it
	// (crossplane/provider/providerconfig.yaml).
	ProviderConfigFile string
	// Credentials is the JSON the ProviderConfig's Secret holds; the harness
	// creates the Secret its secretRef names, with this under its key.
	Credentials []byte
	// Poll is the provider's drift-check interval (--poll); 0 means 20s.
	Poll time.Duration
	// MaxReconcileRate is --max-reconcile-rate (and the controllers'
	// concurrency); 0 means 4, which keeps the many stacks of a test run
	// from crowding a small machine; below 0 the flag is left out, so the
	// provider runs with its own default, as a package install does.
	MaxReconcileRate int
}

// startProvider starts the provider and creates the credentials Secret and
// the ProviderConfig.
func (cp *ControlPlane) startProvider(ctx context.Context) error {
	pc := cp.cfg.Provider
	if pc == nil {
		return nil
	}
	if err := cp.runProvider(ctx); err != nil {
		return err
	}
	return cp.applyProviderConfig(ctx, pc)
}

// RestartProvider kills the provider at once (SIGKILL, as a node failure or
// an OOM kill would) and starts it again, for the tests of a provider that
// dies in the middle of an operation.
func (cp *ControlPlane) RestartProvider(ctx context.Context) error {
	if cp.Provider == nil {
		return fmt.Errorf("the stack runs no provider")
	}
	cp.Provider.Kill()
	// The dead process leaves the list, so Tails shows the log once.
	for i, p := range cp.procs {
		if p == cp.Provider {
			cp.procs = append(cp.procs[:i], cp.procs[i+1:]...)
			break
		}
	}
	return cp.runProvider(ctx)
}

// runProvider starts the provider process and waits until it serves.
func (cp *ControlPlane) runProvider(ctx context.Context) error {
	pc := cp.cfg.Provider
	bin := filepath.Join(pc.Bin, "provider")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("cannot find the provider in PROVIDER_BIN %q (run hack/build-provider.sh): %w", pc.Bin, err)
	}
	home := filepath.Join(cp.Dir, "provider")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("cannot create the provider's folder: %w", err)
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	every, rate := pc.Poll, pc.MaxReconcileRate
	if every == 0 {
		every = 20 * time.Second
	}
	if rate == 0 {
		rate = 4
	}
	var rateArgs []string
	if rate > 0 {
		rateArgs = []string{"--max-reconcile-rate=" + strconv.Itoa(rate)}
	}
	metrics := "127.0.0.1:" + strconv.Itoa(port)
	env := []string{
		"HOME=" + home, // bpg writes $HOME/.ssh/known_hosts
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"KUBECONFIG=" + cp.Kubeconfig,
	}
	args := []string{
		"--debug",
		"--poll=" + every.String(), "--sync=1m",
		// An empty certs dir turns the webhooks off; leader election is
		// off by default.
		"--certs-dir=",
		"--metrics-bind-address=" + metrics,
	}
	args = append(args, rateArgs...)
	p, err := cp.start("provider", env, bin, args...)
	if err != nil {
		return err
	}
	cp.Provider = p
	err = poll(ctx, 60*time.Second, func(ctx context.Context) (bool, error) {
		return httpOK(ctx, http.DefaultClient, "http://"+metrics+"/metrics")
	}, p)
	if err != nil {
		return fmt.Errorf("the provider is not serving: %w", err)
	}
	cp.ProviderMetrics = "http://" + metrics + "/metrics"
	return nil
}

// applyProviderConfig creates the Secret the ProviderConfig names and
// applies the ProviderConfig itself, both as a user would. On a stack that
// installs from packages only the Secret is made here.
func (cp *ControlPlane) applyProviderConfig(ctx context.Context, pc *ProviderConfig) error {
	objs, err := ReadObjects(pc.ProviderConfigFile)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if o.GetKind() != "ProviderConfig" {
			continue
		}
		ref, _, _ := unstructured.NestedMap(o.Object, "spec", "credentials", "secretRef")
		ns, name, key := fmt.Sprint(ref["namespace"]), fmt.Sprint(ref["name"]), fmt.Sprint(ref["key"])
		if ref == nil || ns == "" || name == "" || key == "" {
			return fmt.Errorf("%s: ProviderConfig %s names no credentials Secret (spec.credentials.secretRef namespace, name, key)", pc.ProviderConfigFile, o.GetName())
		}
		nsObj := &corev1.Namespace{}
		nsObj.SetName(ns)
		if err := cp.Client.Create(ctx, nsObj); client.IgnoreAlreadyExists(err) != nil {
			return fmt.Errorf("cannot create namespace %s: %w", ns, err)
		}
		sec := &corev1.Secret{Data: map[string][]byte{key: pc.Credentials}}
		sec.SetNamespace(ns)
		sec.SetName(name)
		if err := cp.Client.Create(ctx, sec); err != nil {
			return fmt.Errorf("cannot create the credentials Secret %s/%s: %w", ns, name, err)
		}
		if cp.cfg.Packages != nil {
			// Its kind comes with the provider's package, and the user (or
			// Flux) applies it once that is installed; the Secret is the
			// out-of-band part.
			continue
		}
		if err := cp.Apply(ctx, o); err != nil {
			return err
		}
	}
	return nil
}
