//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/test/harness"
	"github.com/homelab-infra/homelab-infra/test/proxmoxsim"
)

// TestAdoptionAfterRebuild: the management cluster is disposable. Claims
// applied to a fresh control plane over the same Proxmox adopt the VMs and
// snippets that exist (their external names are the VM id and the snippet
// id) instead of cloning second VMs or failing on "already exists".
//
// Its first stack also creates its machines on a node that refuses the
// first two clones ("got no worker upid", as a loaded node does): bpg
// retries them (clone.retries) and no create fails.
func TestAdoptionAfterRebuild(t *testing.T) {
	t.Parallel()
	testenv.Real(t)
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	n, err := startNode(root, dir, func(o *proxmoxsim.Options) { o.RefuseClones = 2 })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)

	var claims []*unstructured.Unstructured
	var ids []int64
	for _, example := range []string{"dns01", "docker01", "docker01"} {
		c, id := machineClaim(t, example, "adopt")
		claims, ids = append(claims, c), append(ids, id)
	}
	apply := func(cp *harness.ControlPlane) {
		if err := cp.Apply(ctxFor(t), namespaceObject("adopt")); err != nil {
			t.Fatal(err)
		}
		for _, c := range claims {
			if err := cp.Apply(ctxFor(t), c); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range claims {
			waitClaimReady(t, cp, "adopt", c.GetName())
		}
	}

	first := startOwnStack(t, n, filepath.Join(dir, "first"))
	failures := watchFailures(first)
	apply(first)
	for _, f := range failures() {
		t.Errorf("a create failed on the way: %s", f)
	}
	if r := n.Sim.Refusals("got no worker upid"); r != 2 {
		t.Errorf("the node refused %d clones; want 2", r)
	}
	for _, id := range ids {
		if st, _ := n.Sim.VM(int(id)); st.Clones != 1 {
			t.Errorf("VM %d: cloned %d times", id, st.Clones)
		}
	}
	assertNoFailedCreate(t, first)
	snippets := snippetTimes(t, n)
	starts := map[int64]int{}
	for _, id := range ids {
		st, _ := n.Sim.VM(int(id))
		starts[id] = st.Starts
	}
	first.Stop()

	clonesBefore := countRequests(n, "POST", "/clone")
	powerBefore := powerRequests(n)
	second := startOwnStack(t, n, filepath.Join(dir, "second"))
	apply(second)
	if c := countRequests(n, "POST", "/clone") - clonesBefore; c != 0 {
		t.Errorf("the rebuilt cluster cloned %d VMs; it must adopt the existing ones", c)
	}
	for _, id := range ids {
		if st, _ := n.Sim.VM(int(id)); st.Clones != 1 || !st.Boot.Booted {
			t.Errorf("VM %d after the rebuild: clones %d, booted %v", id, st.Clones, st.Boot.Booted)
		}
	}
	// Adopting is reading: a plan that differs from what the clone has
	// (the template's SCSI controller, say) is an update, and bpg's update
	// of a running VM reboots it.
	for _, id := range ids {
		if st, _ := n.Sim.VM(int(id)); st.Starts != starts[id] {
			t.Errorf("VM %d: the rebuilt cluster restarted it (%d starts before, %d after)", id, starts[id], st.Starts)
		}
	}
	if c := powerRequests(n) - powerBefore; c != 0 {
		t.Errorf("the rebuilt cluster asked Proxmox to shut down, reboot or stop a VM %d times; adopting must not", c)
	}
	if got := snippetTimes(t, n); fmt.Sprint(got) != fmt.Sprint(snippets) {
		t.Errorf("the rebuilt cluster rewrote snippets: before %v, after %v", snippets, got)
	}
	if want := len(ids) + 1; len(n.Sim.VMIDs()) != want {
		t.Errorf("want %d VMs (the template and the machines), got %v", want, n.Sim.VMIDs())
	}
}

// observeOnlyAbsent is what crossplane-runtime reports, as a condition and
// as an event, for an Observe-only resource whose external resource does
// not exist (pkg/reconciler/managed/reconciler.go: errExternalResourceNotExist).
// The function composes each VM Observe-only until the provider has read its
// id (a foreign VM is never taken over), so a new machine's VM reports it
// once before it is created: no failure.
const observeOnlyAbsent = "external resource does not exist"

// watchFailures records, until the returned func is called, every failure
// an VirtualMachine reports in its conditions (an asynchronous create that
// fails shows there, not as an event). The func returns them.
func watchFailures(cp *harness.ControlPlane) func() []string {
	stop := make(chan struct{})
	done := make(chan []string)
	go func() {
		seen := map[string]bool{}
		var out []string
		for {
			l := newList(gvkVM)
			if err := cp.Client.List(context.Background(), l); err == nil {
				for _, vm := range l.Items {
					for _, typ := range []string{"LastAsyncOperation", "Synced"} {
						// An update conflict is the apiserver's optimistic
						// locking, retried at once; anything else failed.
						if c := harness.Condition(&vm, typ); c != nil && c["status"] == "False" && !strings.Contains(fmt.Sprint(c["message"]), "the object has been modified") &&
							!strings.Contains(fmt.Sprint(c["message"]), observeOnlyAbsent) {
							msg := fmt.Sprintf("%s %s: %v", vm.GetName(), typ, c["message"])
							if !seen[msg] {
								seen[msg] = true
								out = append(out, msg)
							}
						}
					}
				}
			}
			select {
			case <-stop:
				done <- out
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	return func() []string { close(stop); return <-done }
}

// assertNoFailedCreate fails t if any VirtualMachine reported a failed create.
func assertNoFailedCreate(t *testing.T, cp *harness.ControlPlane) {
	t.Helper()
	l := newList(gvkVM)
	if err := cp.Client.List(ctxFor(t), l); err != nil {
		t.Fatal(err)
	}
	for _, vm := range l.Items {
		evs, err := events(ctxFor(t), cp, "default", compose.VMKind, vm.GetName())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if strings.HasPrefix(e, "Warning") && !strings.Contains(e, observeOnlyAbsent) {
				t.Errorf("VirtualMachine %s: %s", vm.GetName(), e)
			}
		}
	}
}

// snippetTimes is each snippet file's modification time.
func snippetTimes(t *testing.T, n *node) map[string]time.Time {
	t.Helper()
	entries, err := os.ReadDir(n.Sim.SnippetsDir())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Time{}
	for _, e := range entries {
		info, err := e.Info()
		if err == nil {
			out[e.Name()] = info.ModTime()
		}
	}
	return out
}

func countRequests(n *node, method, suffix string) int {
	c := 0
	for _, r := range n.Sim.Requests() {
		if r.Method == method && strings.HasSuffix(r.Path, suffix) {
			c++
		}
	}
	return c
}

// powerRequests counts the calls that take a guest down.
func powerRequests(n *node) int {
	return countRequests(n, "POST", "/status/shutdown") + countRequests(n, "POST", "/status/reboot") + countRequests(n, "POST", "/status/stop")
}

// startOwnStack starts a control plane of the test's own over n, stopped
// when the test ends (Stop twice is harmless); tune as startStack's.
func startOwnStack(t testing.TB, n *node, dir string, tune ...func(*harness.Config)) *harness.ControlPlane {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cp, err := startStack(t, n, dir, tune...)
	if err != nil {
		t.Fatalf("cannot start a control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of each component's log:\n%s\n%s", cp.Tails(40), n.Tail(60))
		}
		cp.Stop()
	})
	return cp
}

func namespaceObject(name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("Namespace")
	u.SetName(name)
	return u
}
