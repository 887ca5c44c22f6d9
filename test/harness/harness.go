// Package harness runs a real Kubernetes control plane with real Crossplane
// for the end-to-end tests: etcd, kube-apiserver and kube-controller-manager
// built from pinned modules (hack/tools, hack/build-tools.sh), Crossplane core
// started the way its Helm chart starts it (`core init`, then `core start`),
// the provider's CRDs, optionally our real provider (provider/: bpg's Terraform provider
// in-process; provider.go), and a composition
// function served over mTLS from a local process.
//
// Everything listens on loopback ports chosen at start, and every process is
// a child in its own process group that dies with the test binary, so two
// runs never meet and a failed run leaves nothing behind.
package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Config says what to run.
type Config struct {
	// ToolsBin is the folder that hack/build-tools.sh prints: etcd,
	// kube-apiserver, kube-controller-manager, crossplane and the
	// crossplane-crds folder.
	ToolsBin string
	// ProviderCRDsDir holds the provider's CRDs (YAML).
	ProviderCRDsDir string
	// Manifests are YAML files applied once Crossplane runs, in order (the
	// XRD, then the Composition). Each XRD is waited for until it is
	// Established and its claim kind Offered. The controller-manager starts
	// after them, so its garbage collector watches their kinds at once.
	Manifests []string
	// Provider, if set, runs our Proxmox provider against the cluster.
	Provider *ProviderConfig
	// Function, if set, is served over mTLS and registered with Crossplane.
	Function *FunctionConfig
	// Packages, if set, makes Crossplane install packages from a registry,
	// with the harness as their runtime (packages.go).
	Packages *PackagesConfig
	// Steps are extra components, started after the manifests and before
	// kube-controller-manager, each made for the stack being started.
	Steps []func(cp *ControlPlane) Step
	// Debug turns on Crossplane's and the function's debug logs.
	Debug bool
	// InCluster serves the API server on the kubernetes Service's address,
	// as pods on a node expect it (incluster.go; StartNode needs it), and
	// runs the controllers pods need: the one that publishes the cluster's
	// CA to every namespace (kube-root-ca.crt, which service account token
	// volumes mount), and those that turn Deployments into pods. It needs
	// root.
	InCluster bool
	// CrossplaneArgs are extra flags for `crossplane core start` (e.g. a
	// shorter --poll-interval).
	CrossplaneArgs []string
	// TempDir is where the stack's folder is made; "" means os.TempDir().
	TempDir string
	// Logf reports progress (which step, how long). Nil means quiet.
	Logf func(format string, args ...any)
}

// FunctionConfig says which composition function to serve.
type FunctionConfig struct {
	// Name is the name Compositions use in functionRef.
	Name string
	// Binary is a function built with function-sdk-go: it must take
	// --address and --tls-server-certs-dir.
	Binary string
	// Args are extra flags, e.g. to turn off a metrics server that would
	// otherwise bind a fixed port.
	Args []string
}

// ControlPlane is a running stack. Stop it when done.
type ControlPlane struct {
	// Dir holds every component's data, certificates and logs.
	Dir        string
	Kubeconfig string
	REST       *rest.Config
	Client     client.Client
	// Function is the composition function's process (nil without one).
	Function *Process
	// Provider is the provider's process (nil without one).
	Provider *Process
	// ProviderMetrics is the provider's Prometheus endpoint (URL).
	ProviderMetrics string
	// FunctionEndpoint is where Crossplane reaches the function.
	FunctionEndpoint string
	// CrossplaneCA signs Crossplane's client and the function's server
	// certificates (Secret crossplane-root-ca).
	CrossplaneCA *CA
	// ClusterIP is the kubernetes Service's address, where the API server
	// listens (port 443) with Config.InCluster: pods and host processes
	// both reach it, so servers pods must reach listen there too.
	ClusterIP string

	cfg   Config
	procs []*Process
	// oneShots are commands that ran to completion (crossplane core init);
	// their logs are part of Tails.
	oneShots []*Process
	// stopRuntime ends the package runtime loop (packages.go).
	stopRuntime func()
	// scheduling: kube-scheduler runs (the first node started it).
	scheduling bool
	// nodes are the nodes started (node.go).
	nodes []*Node
	// down: Down stopped the components.
	down bool
	// cleanups undo what the stack changed on the host (an address on lo),
	// newest first, in Stop.
	cleanups []func()
}

// Start brings the stack up. On error it stops what it started and the error
// carries the tail of every component's log.
func Start(ctx context.Context, cfg Config) (_ *ControlPlane, err error) {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "crossplane"} {
		if _, err := os.Stat(filepath.Join(cfg.ToolsBin, b)); err != nil {
			return nil, fmt.Errorf("cannot find %s in TOOLS_BIN %q (run hack/build-tools.sh, or make e2e): %w", b, cfg.ToolsBin, err)
		}
	}
	dir, err := os.MkdirTemp(cfg.TempDir, "homelab-controlplane-")
	if err != nil {
		return nil, fmt.Errorf("cannot create the stack's folder: %w", err)
	}
	cp := &ControlPlane{Dir: dir, cfg: cfg}
	if err := os.MkdirAll(cp.logDir(), 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the log folder: %w", err)
	}
	defer func() {
		if err != nil {
			// Keep the folder: its logs are the post-mortem.
			tails := cp.Tails(30)
			cp.stopProcesses()
			cp.cleanUp()
			err = fmt.Errorf("%w\n(the stack's folder is kept: %s)\n%s", err, cp.Dir, tails)
		}
	}()

	start := time.Now()
	for _, s := range cp.steps() {
		t := time.Now()
		if err := s.Run(ctx); err != nil {
			return nil, fmt.Errorf("cannot start %s: %w", s.Name, err)
		}
		cfg.Logf("harness: %s ready in %s", s.Name, time.Since(t).Round(time.Millisecond))
	}
	cfg.Logf("harness: stack ready in %s (logs in %s)", time.Since(start).Round(time.Millisecond), cp.logDir())
	return cp, nil
}

// A Step starts one component of the stack.
type Step struct {
	Name string
	Run  func(ctx context.Context) error
}

// steps are the components in the order they start. A component adds its
// step here (one line, its code in a file of its own); a test adds its own
// through Config.Steps.
func (cp *ControlPlane) steps() []Step {
	steps := []Step{
		{"kube-apiserver and etcd", cp.startKube},
		{"provider CRDs", cp.installProviderCRDs},
		{"crossplane", cp.startCrossplane},
		{"package runtime", cp.packagesStep},
		{"provider", cp.startProvider},
		{"function", cp.startFunction},
		{"manifests", cp.applyManifests},
	}
	for _, extra := range cp.cfg.Steps {
		steps = append(steps, extra(cp))
	}
	// Last, so that its garbage collector finds every kind (the
	// provider's, the XRD's) at its first discovery. A kind that appears
	// later is only watched after its discovery resync (30 s), and until
	// then a deleted XR's composed resources linger.
	return append(steps, Step{"kube-controller-manager", cp.startControllerManager})
}

// Stop ends every process, newest first, and removes the stack's folder.
// Set HARNESS_KEEP=1 to keep the folder (data and logs) for a post-mortem.
func (cp *ControlPlane) Stop() {
	cp.drainNodes()
	cp.stopProcesses()
	cp.cleanUp()
	if os.Getenv("HARNESS_KEEP") != "" {
		cp.cfg.Logf("harness: kept %s", cp.Dir)
		return
	}
	_ = os.RemoveAll(cp.Dir)
}

func (cp *ControlPlane) cleanUp() {
	for i := len(cp.cleanups) - 1; i >= 0; i-- {
		cp.cleanups[i]()
	}
	cp.cleanups = nil
}

func (cp *ControlPlane) stopProcesses() {
	if cp.stopRuntime != nil {
		cp.stopRuntime()
	}
	for i := len(cp.procs) - 1; i >= 0; i-- {
		cp.procs[i].Stop(10 * time.Second)
	}
	for _, p := range cp.oneShots {
		p.Stop(time.Second)
	}
}

// Tails returns the last n lines of every component's log, each under a
// header, and says which components have exited.
func (cp *ControlPlane) Tails(n int) string {
	var b strings.Builder
	for _, p := range append(cp.oneShots[:len(cp.oneShots):len(cp.oneShots)], cp.procs...) {
		state := "running"
		if done, err := p.Exited(); done {
			state = fmt.Sprintf("exited: %v", err)
		}
		fmt.Fprintf(&b, "----- %s (%s), last %d lines of %s -----\n%s\n", p.Name, state, n, p.LogPath, p.Tail(n))
	}
	return b.String()
}

// Processes returns the running components, oldest first.
func (cp *ControlPlane) Processes() []*Process { return cp.procs }

func (cp *ControlPlane) logDir() string { return filepath.Join(cp.Dir, "logs") }

func (cp *ControlPlane) start(name string, env []string, bin string, args ...string) (*Process, error) {
	p, err := StartProcess(name, filepath.Join(cp.logDir(), name+".log"), env, bin, args...)
	if err != nil {
		return nil, err
	}
	cp.procs = append(cp.procs, p)
	return p, nil
}

// baseEnv is the little a component needs from the environment.
func (cp *ControlPlane) baseEnv(extra ...string) []string {
	env := []string{"HOME=" + cp.Dir, "PATH=/usr/local/bin:/usr/bin:/bin", "TMPDIR=" + os.TempDir()}
	return append(env, extra...)
}

// poll calls cond every interval until it returns true, returns an error, or
// timeout passes. While waiting it checks that the processes it depends on
// are still alive, so a crash fails fast with the crash's log.
func poll(ctx context.Context, timeout time.Duration, cond func(context.Context) (bool, error), watch ...*Process) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		ok, err := cond(ctx)
		if ok && err == nil {
			return nil
		}
		if err != nil {
			last = err
		}
		for _, p := range watch {
			if done, werr := p.Exited(); done {
				return fmt.Errorf("%s exited (%v)", p.Name, werr)
			}
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("timed out after %s: %w", timeout, last)
			}
			return fmt.Errorf("timed out after %s", timeout)
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// errNotYet marks a condition that is expected to become true soon.
var errNotYet = errors.New("not yet")
