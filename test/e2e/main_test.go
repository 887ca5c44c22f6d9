//go:build e2e

// Package e2e runs Machine claims through a real control plane: etcd,
// kube-apiserver and kube-controller-manager, Crossplane core,
// function-machine over mTLS, and our real provider (provider/: bpg's
// Terraform provider in-process, through Upjet) managing a
// simulated Proxmox node, the suite's one fake (test/proxmoxsim), whose
// snippets arrive over real SSH. See test/harness for how the stack is run.
//
// Most tests share one stack and one node, started by the first test that
// needs them and stopped when the package's tests end. Tests keep to their
// own namespaces, VM ids and host names (machineClaim), so they run side by
// side without seeing each other's machines; the adoption test runs its own
// node and two stacks.
//
// Run with `make e2e`, or:
//
//	TOOLS_BIN=$(hack/build-tools.sh) PROVIDER_BIN=$(hack/build-provider.sh) go test -tags e2e -parallel 8 ./test/e2e/
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/test/harness"
)

var (
	stackOnce sync.Once
	stackCP   *harness.ControlPlane
	stackNode *node
	// nodeDir holds the shared node's storage and sshd, and the stack's
	// folder.
	nodeDir  string
	stackErr error
	// tmpDir holds what the run builds (the function binary).
	tmpDir string
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if stackCP != nil {
		if code != 0 {
			// A failed test prints its own details; the components' logs tell
			// what the cluster did meanwhile.
			fmt.Fprintf(os.Stderr, "e2e: tests failed; last lines of each component's log:\n%s", stackCP.Tails(40))
		}
		stackCP.Stop()
	}
	closeRegistry()
	if stackNode != nil {
		if code != 0 {
			fmt.Fprint(os.Stderr, stackNode.Tail(60))
		}
		stackNode.Stop()
	}
	if nodeDir != "" && os.Getenv("HARNESS_KEEP") == "" {
		_ = os.RemoveAll(nodeDir)
	}
	if tmpDir != "" {
		_ = os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

// stack returns the shared control plane, starting it on first use. Under
// -short it skips t; otherwise a stack that cannot start fails t.
func stack(t testing.TB) *harness.ControlPlane {
	t.Helper()
	cp, _ := stackWithNode(t)
	return cp
}

// stackWithNode is stack and the simulated Proxmox node behind it.
func stackWithNode(t testing.TB) (*harness.ControlPlane, *node) {
	t.Helper()
	testenv.Real(t)
	stackOnce.Do(func() {
		root := testenv.RepoRoot(t)
		nodeDir, stackErr = os.MkdirTemp("", "homelab-e2e-node-")
		if stackErr != nil {
			return
		}
		stackNode, stackErr = startNode(root, nodeDir, nil)
		if stackErr != nil {
			return
		}
		// The stack's folder goes inside the node's: twice, during runs
		// on this shared machine, a top-level /tmp/homelab-controlplane-*
		// folder vanished under a running stack, while the folders
		// beside it stayed.
		stackCP, stackErr = startStack(t, stackNode, nodeDir)
	})
	if stackErr != nil {
		t.Fatalf("cannot start the control plane: %v", stackErr)
	}
	return stackCP, stackNode
}

// startStack starts a control plane whose provider manages n; tune, if
// given, adjusts its configuration (e.g. the provider's poll interval).
func startStack(t testing.TB, n *node, tempDir string, tune ...func(*harness.Config)) (*harness.ControlPlane, error) {
	root := testenv.RepoRoot(t)
	bin, err := toolsBin(root)
	if err != nil {
		return nil, err
	}
	pbin, err := providerBin(root)
	if err != nil {
		return nil, err
	}
	fnBin, err := functionBinary(root)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := harness.Config{
		ToolsBin:        bin,
		TempDir:         tempDir,
		ProviderCRDsDir: testenv.ProviderCRDsDir(t),
		Provider: &harness.ProviderConfig{
			Bin:                pbin,
			ProviderConfigFile: filepath.Join(root, "crossplane", "provider", "providerconfig.yaml"),
			Credentials:        n.Credentials(),
		},
		Manifests: []string{
			filepath.Join(root, "crossplane", "xrd.yaml"),
			filepath.Join(root, "crossplane", "composition.yaml"),
		},
		Function: &harness.FunctionConfig{
			Name:   functionName(t, root),
			Binary: fnBin,
			// Its metrics server would bind :8080 on every interface.
			Args: []string{"--metrics-address="},
		},
		Debug: os.Getenv("E2E_DEBUG") != "",
		Logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
		},
	}
	for _, f := range tune {
		f(&cfg)
	}
	return harness.Start(ctx, cfg)
}

var (
	fnOnce sync.Once
	fnBin  string
	fnErr  error
)

// functionBinary builds cmd/function-machine once per run.
func functionBinary(root string) (string, error) {
	fnOnce.Do(func() {
		tmpDir, fnErr = os.MkdirTemp("", "homelab-e2e-")
		if fnErr != nil {
			return
		}
		fnBin = filepath.Join(tmpDir, "function-machine")
		build := exec.Command("go", "build", "-o", fnBin, "./cmd/function-machine")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			fnErr = fmt.Errorf("cannot build function-machine: %w\n%s", err, out)
		}
	})
	return fnBin, fnErr
}

// toolsBin is the folder of pinned control-plane binaries: $TOOLS_BIN as
// `make e2e` sets it, or else whatever hack/build-tools.sh prints (instant
// when its cache is warm).
func toolsBin(root string) (string, error) { return builtBin(root, "TOOLS_BIN", "build-tools.sh") }

// providerBin is the folder of the real provider stack: $PROVIDER_BIN, or
// whatever hack/build-provider.sh prints.
func providerBin(root string) (string, error) {
	return builtBin(root, "PROVIDER_BIN", "build-provider.sh")
}

// builtBin is $env when set, else the folder the hack script prints.
func builtBin(root, env, script string) (string, error) {
	if b := os.Getenv(env); b != "" {
		return b, nil
	}
	cmd := exec.Command(filepath.Join(root, "hack", script))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("cannot build with hack/%s: %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// functionName is the functionRef name in our Composition: the name the
// FunctionRevision must carry for Crossplane to find the function.
func functionName(t testing.TB, root string) string {
	t.Helper()
	objs, err := harness.ReadObjects(filepath.Join(root, "crossplane", "composition.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		steps, _, _ := unstructuredSlice(o.Object, "spec", "pipeline")
		for _, s := range steps {
			if m, ok := s.(map[string]any); ok {
				if ref, ok := m["functionRef"].(map[string]any); ok {
					return fmt.Sprint(ref["name"])
				}
			}
		}
	}
	t.Fatalf("cannot find a functionRef in crossplane/composition.yaml")
	return ""
}
