//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/machine"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/test/harness"
)

// labRegistry is the registry every package in the repo is named under
// (crossplane/provider/provider.yaml says why).
const labRegistry = "registry.lab.home.arpa"

var (
	regOnce sync.Once
	reg     *harness.Registry
	regErr  error
)

// packageRegistry is a registry on loopback holding the repo's packages, as
// `make push` builds them (the function, our provider, the Configuration). It is filled once,
// by the first test that needs it, and closed when the package's tests end.
func packageRegistry(t testing.TB) *harness.Registry {
	t.Helper()
	testenv.Real(t)
	regOnce.Do(func() {
		root := testenv.RepoRoot(t)
		bin, err := toolsBin(root)
		if err != nil {
			regErr = err
			return
		}
		if reg, regErr = harness.StartRegistry(); regErr != nil {
			return
		}
		regErr = pushPackages(root, bin, reg.Host)
	})
	if regErr != nil {
		t.Fatalf("cannot fill the package registry: %v", regErr)
	}
	return reg
}

// closeRegistry closes the registry (from TestMain).
func closeRegistry() {
	if reg != nil {
		_ = reg.Close()
	}
}

// packagedStack starts a control plane of the test's own on which Crossplane
// installs everything from packages, as in a cluster: from packageRegistry,
// which an ImageConfig points registry.lab.home.arpa at. Nothing of the
// Machine API is applied by the harness. It stops when the test ends, after
// printing its components' logs if the test failed.
func packagedStack(t *testing.T) (*harness.ControlPlane, *node) {
	t.Helper()
	reg := packageRegistry(t)
	root := testenv.RepoRoot(t)
	bin, err := toolsBin(root)
	if err != nil {
		t.Fatal(err)
	}
	pbin, err := providerBin(root)
	if err != nil {
		t.Fatal(err)
	}
	fnBin, err := functionBinary(root)
	if err != nil {
		t.Fatal(err)
	}
	n, err := startNode(root, t.TempDir(), nil)
	if err != nil {
		t.Fatalf("cannot start the simulated Proxmox node: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cp, err := harness.Start(ctx, harness.Config{
		ToolsBin: bin,
		Packages: &harness.PackagesConfig{Registry: reg.Host, Prefix: labRegistry},
		// The provider runs as the runtime of the package Crossplane
		// installs; only the credentials Secret is made, as a user makes it.
		Provider: &harness.ProviderConfig{
			Bin:                pbin,
			ProviderConfigFile: filepath.Join(root, "crossplane", "provider", "providerconfig.yaml"),
			Credentials:        n.Credentials(),
		},
		Function: &harness.FunctionConfig{
			Name:   functionName(t, root),
			Binary: fnBin,
			Args:   []string{"--metrics-address="},
		},
		Debug: os.Getenv("E2E_DEBUG") != "",
		Logf:  logf,
	})
	if err != nil {
		n.Stop()
		t.Fatalf("cannot start the packaged control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of each component's log:\n%s\n%s", cp.Tails(40), n.Tail(60))
		}
		cp.Stop()
		n.Stop()
	})
	return cp, n
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
}

// pushPackages builds the repo's packages (the function, our provider and
// the Configuration) with the script `make push` runs, and pushes them to
// host under the names the manifests use.
func pushPackages(root, toolsBin, host string) error {
	out, err := os.MkdirTemp("", "homelab-packages-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(out)
	cmd := exec.Command(filepath.Join(root, "hack", "packages.sh"), "--push", "--registry", host, out)
	// The provider for this machine's architecture only: the stack runs
	// it here, and a cross-build of it costs minutes (make push builds both).
	cmd.Env = append(os.Environ(), "TOOLS_BIN="+toolsBin, "PROVIDER_ARCHS="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("hack/packages.sh --push: %w\n%s", err, b)
	}
	return nil
}

// TestConfigurationPackage installs the Machine API as a user without a
// GitOps tool does: `kubectl apply -f deploy/configuration.yaml`. Crossplane
// pulls the Configuration that `make push` built, resolves its dependencies
// (the provider and the function, pulled too), installs the XRD, the
// Composition and the activation policy from it, and the provider's two
// activated kinds become CRDs. A claim then composes through the
// package-installed function, whose runtime is the harness's process.
func TestConfigurationPackage(t *testing.T) {
	cp, n := packagedStack(t)
	ctx := ctxFor(t)
	if _, err := cp.ApplyFile(ctx, filepath.Join(testenv.RepoRoot(t), "deploy", "configuration.yaml")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ kind, name string }{
		{"Configuration", "homelab-infra-machines"},
		{"Function", machine.FunctionRef},
	} {
		waitWithin(t, 3*time.Minute, p.kind+" "+p.name+" installed and healthy", packageHealthy(cp, p.kind, p.name))
	}
	if err := cp.WaitXRD(ctx, "xmachines.homelab.dev"); err != nil {
		t.Fatal(err)
	}
	if _, err := get(ctx, cp, gvkComposition, "", "machine"); err != nil {
		t.Fatalf("the Composition from the package: %v", err)
	}
	// Our provider is a SafeStart package: its kinds arrive as inactive
	// ManagedResourceDefinitions, and become CRDs because the package's
	// activation policy names them.
	for _, crd := range []string{"virtualmachines.ve.proxmox.homelab.dev", "files.ve.proxmox.homelab.dev"} {
		waitFor(t, "MRD "+crd+" activated by the package's policy", func(ctx context.Context) (bool, string, error) {
			m, err := get(ctx, cp, gvkMRD, "", crd)
			if err != nil {
				return false, err.Error(), nil
			}
			state, _, _ := unstructuredString(m.Object, "spec", "state")
			return state == "Active", "spec.state " + state, nil
		})
		waitFor(t, "CRD "+crd+" established", func(ctx context.Context) (bool, string, error) {
			c, err := get(ctx, cp, gvkCRD, "", crd)
			if err != nil {
				return false, err.Error(), nil
			}
			return harness.ConditionStatus(c, "Established") == "True", conditionsString(c), nil
		})
	}

	// The provider, installed from its package and run by the harness, is
	// healthy; the ProviderConfig (its kind came with the package) is
	// applied as the README says, and a claim makes a booted VM.
	waitWithin(t, 3*time.Minute, "Provider installed and healthy", packageHealthy(cp, "Provider", providerName(t)))
	if _, err := cp.ApplyFile(ctx, filepath.Join(testenv.RepoRoot(t), "crossplane", "provider", "providerconfig.yaml")); err != nil {
		t.Fatal(err)
	}
	claim, _, _ := composeExample(t, cp, "package", "dns01")
	waitWithin(t, 5*time.Minute, "dns01 Ready", func(ctx context.Context) (bool, string, error) {
		c, err := get(ctx, cp, gvkMachine, claim.GetNamespace(), claim.GetName())
		if err != nil {
			return false, "", err
		}
		return harness.ConditionStatus(c, "Ready") == "True", conditionsString(c) + "; " + n.Tail(5), nil
	})
}

// providerName is the Provider object's name in crossplane/provider/provider.yaml.
func providerName(t testing.TB) string {
	t.Helper()
	objs, err := harness.ReadObjects(filepath.Join(testenv.RepoRoot(t), "crossplane", "provider", "provider.yaml"))
	if err != nil || len(objs) == 0 {
		t.Fatalf("cannot read crossplane/provider/provider.yaml: %v", err)
	}
	return objs[0].GetName()
}
