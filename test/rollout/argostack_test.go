//go:build rollout

package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-infra/homelab-infra/internal/rollout"
	"github.com/homelab-infra/homelab-infra/internal/runtimeimage"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/test/harness"
)

// The namespaces of the rollout (workflows/) and of the claims.
const (
	rolloutsNS = "rollouts"
	claimsNS   = "infra-machines"
)

// executorImage is argoexec's image, as the node pulls it from the lab's
// registry (the loopback one).
const executorImage = labRegistry + "/argoproj/argoexec:v4.0.5"

// argoStack is one control plane for the whole Argo suite: the API server
// on the kubernetes Service's address, Crossplane with the function, the
// XRD and the Composition (the claims' running state), a node (kubelet,
// containerd, runc, kube-scheduler) pulling the step images from a loopback
// registry, the Argo controller, and the fleet: real agents, a real
// Prometheus and a git server the step pods reach.
type argoStack struct {
	t    *testing.T
	root string
	cp   *harness.ControlPlane
	argo *harness.Argo
	f    *fleet
}

func newArgoStack(t *testing.T, roles map[string]string, spare ...string) *argoStack {
	env := map[string]string{}
	for _, k := range []string{"TOOLS_BIN", "KUBELET_BIN", "ARGO_BIN", "PROMETHEUS_BIN"} {
		if env[k] = os.Getenv(k); env[k] == "" {
			t.Fatalf("%s is not set: run make rollout-e2e", k)
		}
	}
	root := testenv.RepoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()

	reg, err := harness.StartRegistry()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	// The step image as `make push` builds and pushes it (labctl and this
	// host's git), built while the control plane, the fleet, the node and
	// Argo start (nothing pulls it before the workflows and the publisher
	// are installed, below): it took 55 s to 2 minutes before them, with
	// the builds cached.
	pkgs := exec.Command(filepath.Join(root, "hack", "packages.sh"), "--push", "--registry", reg.Host, t.TempDir())
	// The step image alone: this stack runs the function as a process
	// (below), no provider and no Configuration package, and pulls nothing
	// else: the function for two architectures, the provider (its link
	// of bpg and Upjet, its image) and the Configuration were built and
	// pushed for nothing.
	pkgs.Env = append(os.Environ(), "TOOLS_BIN="+env["TOOLS_BIN"], "PACKAGES=step")
	var pkgsOut bytes.Buffer
	pkgs.Stdout, pkgs.Stderr = &pkgsOut, &pkgsOut
	// Its own process group, so that a test that stops early stops its
	// builds too.
	pkgs.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := pkgs.Start(); err != nil {
		t.Fatalf("hack/packages.sh --push: %v", err)
	}
	pkgsDone := false
	t.Cleanup(func() {
		if !pkgsDone {
			_ = syscall.Kill(-pkgs.Process.Pid, syscall.SIGKILL)
			_ = pkgs.Wait()
		}
	})
	// argoexec's image.
	argoexec, err := os.ReadFile(filepath.Join(env["ARGO_BIN"], "argoexec"))
	if err != nil {
		t.Fatal(err)
	}
	// The emissary runs `argoexec` from PATH (workflow/controller/workflowpod.go).
	img, err := runtimeimage.Build(runtimeimage.Spec{Binary: argoexec, Name: "argoexec", Arch: runtime.GOARCH, Env: []string{"PATH=/"}})
	if err != nil {
		t.Fatal(err)
	}
	push(t, reg, executorImage, img)
	t.Logf("argoexec's image built and pushed in %s", time.Since(start).Round(time.Second))

	fnBin := filepath.Join(t.TempDir(), "function-machine")
	if out, err := exec.Command("go", "build", "-o", fnBin, "../../cmd/function-machine").CombinedOutput(); err != nil {
		t.Fatalf("cannot build function-machine: %v\n%s", err, out)
	}
	cp, err := harness.Start(ctx, harness.Config{
		ToolsBin:        env["TOOLS_BIN"],
		InCluster:       true,
		ProviderCRDsDir: testenv.ProviderCRDsDir(t),
		Manifests:       []string{filepath.Join(root, "crossplane", "xrd.yaml"), filepath.Join(root, "crossplane", "composition.yaml")},
		Function:        &harness.FunctionConfig{Name: "homelab-infra-function-machine", Binary: fnBin, Args: []string{"--metrics-address="}},
		// The claims show a machine's running state within a poll.
		CrossplaneArgs: []string{"--poll-interval=5s"},
		Logf:           t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &argoStack{t: t, root: root, cp: cp}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(cp.Tails(60))
		}
		cp.Stop()
	})
	// The fleet first: its machines' first convergence from main (a Nix
	// build each) overlaps the node's and Argo's start.
	const token = "rollout-token-for-deploy-and-reboot-refs"
	s.f = newFleetOn(t, roles, fleetNet{addr: cp.ClusterIP, pushToken: token, spare: spare})
	startNode(ctx, t, cp, reg)
	// A requeue a second, as Argo's own e2e tests run: with its default of
	// ten seconds each of a rollout's ten-odd steps in a row waited up to
	// ten seconds for the controller to look again (the controller's log
	// showed its passes over a workflow exactly ten seconds apart). What
	// a step does and what the test checks are the same.
	s.argo, err = cp.StartArgo(ctx, harness.ArgoConfig{Bin: env["ARGO_BIN"], Namespace: rolloutsNS, ExecutorImage: executorImage,
		RequeueTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("control plane, fleet, node and Argo up %s after the start", time.Since(start).Round(time.Second))
	err = pkgs.Wait()
	pkgsDone = true
	if err != nil {
		t.Fatalf("hack/packages.sh --push: %v\n%s", err, pkgsOut.String())
	}
	t.Logf("step image built and pushed %s after the start", time.Since(start).Round(time.Second))

	// What the README's walkthrough installs: the rollout's identity, its
	// limits and the WorkflowTemplate, its configuration and Git token.
	for _, f := range []string{"rollout-rbac.yaml", "rollout-limits.yaml", "rollout.yaml"} {
		if _, err := cp.ApplyFile(ctx, filepath.Join(root, "workflows", f)); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []client.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "rollout-config", Namespace: rolloutsNS},
			Data: map[string]string{"repo": s.f.url, "prometheus": s.f.prom.URL}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "rollout-git", Namespace: rolloutsNS},
			StringData: map[string]string{"token": token}},
	} {
		if err := cp.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	// The claims (the fleet's, committed to its repository), and the
	// service that puts each machine's running state on its claim: the
	// manifest as the README installs it, publishing every 5 s (and with
	// the fleet's staleAfter) for the test's pace.
	if _, err := cp.ApplyFile(ctx, filepath.Join(root, "crossplane", "claims", "namespace.yaml")); err != nil {
		t.Fatal(err)
	}
	claims, _ := filepath.Glob(filepath.Join(s.f.repo.Work, "crossplane", "claims", "*.yaml"))
	for _, c := range claims {
		if _, err := cp.ApplyFile(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := harness.ReadObjects(filepath.Join(root, "workflows", "running-state.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			ctrs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			c := ctrs[0].(map[string]any)
			c["args"] = []any{"rollout", "publish-state", "--namespace=" + claimsNS, "--every=5s", "--stale-after=30s"}
			_ = unstructured.SetNestedSlice(o.Object, ctrs, "spec", "template", "spec", "containers")
		}
		if err := cp.Apply(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("stack ready in %s", time.Since(start).Round(time.Second))
	return s
}

// kubectl runs the real kubectl against the stack.
func (s *argoStack) kubectl(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(os.Getenv("TOOLS_BIN"), "kubectl"), append([]string{"--kubeconfig", s.cp.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// claimState is what a Machine claim shows of its machine's running
// system: status.system and the Converged condition.
type claimState struct {
	Desired, Running, Verdict, LastFailure string
	PendingReboot                          bool
	Converged, Reason                      string
}

func (s *argoStack) claimState(host string) claimState {
	s.t.Helper()
	c := &unstructured.Unstructured{}
	c.SetAPIVersion("homelab.dev/v1alpha1")
	c.SetKind("Machine")
	if err := s.cp.Client.Get(context.Background(), client.ObjectKey{Namespace: claimsNS, Name: host}, c); err != nil {
		s.t.Fatal(err)
	}
	sys, _, _ := unstructured.NestedMap(c.Object, "status", "system")
	str := func(k string) string { v, _ := sys[k].(string); return v }
	st := claimState{Desired: str("desiredCommit"), Running: str("runningCommit"), Verdict: str("verdict"), LastFailure: str("lastFailure")}
	st.PendingReboot, _ = sys["pendingReboot"].(bool)
	if cond := harness.Condition(c, "Converged"); cond != nil {
		st.Converged, _ = cond["status"].(string)
		st.Reason, _ = cond["reason"].(string)
	}
	return st
}

// waitClaims waits until each claim shows what is wanted: the machine's
// state went through Prometheus, the publisher, Crossplane and the
// function.
func (s *argoStack) waitClaims(want map[string]claimState) {
	s.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got := map[string]claimState{}
		for h := range want {
			got[h] = s.claimState(h)
		}
		diff := cmp.Diff(want, got)
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			s.t.Errorf("the claims' running state (-want, +got):\n%s", diff)
			return
		}
		time.Sleep(2 * time.Second)
	}
}

// waitClaim waits until host's claim is as ok (which checks what want
// says) wants it.
func (s *argoStack) waitClaim(host, want string, ok func(claimState) bool) {
	s.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		c := s.claimState(host)
		if ok(c) {
			s.t.Logf("%s's claim: %+v", host, c)
			return
		}
		if time.Now().After(deadline) {
			s.t.Errorf("%s's claim: %+v; want it %s", host, c, want)
			return
		}
		time.Sleep(2 * time.Second)
	}
}

// claimsConverged is the claims of hosts converged on commit.
func claimsConverged(commit string, hosts ...string) map[string]claimState {
	m := map[string]claimState{}
	for _, h := range hosts {
		m[h] = claimState{Desired: commit, Running: commit, Verdict: "converged", Converged: "True", Reason: "Converged"}
	}
	return m
}

// submit starts a rollout as `argo submit --from workflowtemplate/rollout
// -p group=G -p selector=S -p poll=1s [-p target=T]` does: a Workflow
// referring to the template, with the parameters (workflow/common/convert.go
// NewWorkflowFromWorkflowTemplate). It returns the workflow's name.
//
// poll=1s: the host and reboot steps read their machine's verdict every
// second, not every ten (labctl's default, the template's), as the fleet's
// agents poll Git and Prometheus scrapes them every second: at ten, each
// host step saw its machine converged up to ten seconds late, for some 30
// host and reboot steps in the suite. labctl's own suite (TestRollout)
// polls every 500 ms.
func (s *argoStack) submit(group, selector, target string) string {
	s.t.Helper()
	params := []any{map[string]any{"name": "group", "value": group}, map[string]any{"name": "selector", "value": selector},
		map[string]any{"name": "poll", "value": "1s"}}
	if target != "" {
		params = append(params, map[string]any{"name": "target", "value": target})
	}
	wf := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
		"metadata": map[string]any{"generateName": "rollout-", "namespace": rolloutsNS,
			"labels": map[string]any{"workflows.argoproj.io/workflow-template": "rollout"}},
		"spec": map[string]any{"workflowTemplateRef": map[string]any{"name": "rollout"}, "arguments": map[string]any{"parameters": params}},
	}}
	if err := s.cp.Client.Create(context.Background(), wf); err != nil {
		s.t.Fatal(err)
	}
	s.t.Logf("submitted %s: group %s, %s, target %q", wf.GetName(), group, selector, target)
	return wf.GetName()
}

// workflow reads a workflow.
func (s *argoStack) workflow(name string) *unstructured.Unstructured {
	s.t.Helper()
	wf := &unstructured.Unstructured{}
	wf.SetAPIVersion("argoproj.io/v1alpha1")
	wf.SetKind("Workflow")
	if err := s.cp.Client.Get(context.Background(), client.ObjectKey{Namespace: rolloutsNS, Name: name}, wf); err != nil {
		s.t.Fatal(err)
	}
	return wf
}

func phase(wf *unstructured.Unstructured) string {
	p, _, _ := unstructured.NestedString(wf.Object, "status", "phase")
	return p
}

// node is one node of a workflow's status.nodes.
type node struct {
	ID, Name, DisplayName, Type, Phase, TemplateName, Message string
	StartedAt, FinishedAt                                     time.Time
	Inputs, Outputs                                           map[string]string
}

// nodes reads a workflow's nodes.
func nodes(wf *unstructured.Unstructured) []node {
	raw, _, _ := unstructured.NestedMap(wf.Object, "status", "nodes")
	var out []node
	for id, v := range raw {
		m := v.(map[string]any)
		str := func(k string) string { s, _ := m[k].(string); return s }
		n := node{ID: id, Name: str("name"), DisplayName: str("displayName"), Type: str("type"), Phase: str("phase"),
			TemplateName: str("templateName"), Message: str("message"), Inputs: params(m["inputs"]), Outputs: params(m["outputs"])}
		n.StartedAt, _ = time.Parse(time.RFC3339, str("startedAt"))
		n.FinishedAt, _ = time.Parse(time.RFC3339, str("finishedAt"))
		out = append(out, n)
	}
	return out
}

func params(v any) map[string]string {
	m, _ := v.(map[string]any)
	ps, _ := m["parameters"].([]any)
	out := map[string]string{}
	for _, p := range ps {
		pm, _ := p.(map[string]any)
		if name, ok := pm["name"].(string); ok {
			out[name] = fmt.Sprint(pm["value"])
		}
	}
	return out
}

// wait waits until the workflow reaches a phase done says is enough, and
// returns it.
func (s *argoStack) wait(name string, timeout time.Duration, done func(*unstructured.Unstructured) bool) *unstructured.Unstructured {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		wf := s.workflow(name)
		if done(wf) {
			return wf
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("workflow %s: phase %q, message %q after %s\n%s", name, phase(wf), msg(wf), timeout, describe(wf))
		}
		time.Sleep(time.Second)
	}
}

func msg(wf *unstructured.Unstructured) string {
	m, _, _ := unstructured.NestedString(wf.Object, "status", "message")
	return m
}

// finished waits until the workflow completes.
func (s *argoStack) finished(name string) *unstructured.Unstructured {
	return s.wait(name, 15*time.Minute, func(wf *unstructured.Unstructured) bool {
		switch phase(wf) {
		case "Succeeded", "Failed", "Error":
			return true
		}
		return false
	})
}

// describe lists a workflow's nodes, as `argo get` does, for a failure.
func describe(wf *unstructured.Unstructured) string {
	var b strings.Builder
	for _, n := range nodes(wf) {
		fmt.Fprintf(&b, "  %-40s %-10s %-9s %s %v\n", n.Name, n.Type, n.Phase, n.Message, n.Outputs)
	}
	return b.String()
}

// report is the exit handler's report (its output parameter).
func (s *argoStack) report(wf *unstructured.Unstructured) rollout.Report {
	s.t.Helper()
	for _, n := range nodes(wf) {
		if n.TemplateName == "report" && n.Outputs["report"] != "" {
			var r rollout.Report
			if err := json.Unmarshal([]byte(n.Outputs["report"]), &r); err != nil {
				s.t.Fatalf("the exit handler's report: %v\n%s", err, n.Outputs["report"])
			}
			return r
		}
	}
	s.t.Fatalf("workflow %s has no report from its exit handler:\n%s", wf.GetName(), describe(wf))
	return rollout.Report{}
}

// gate waits for the workflow to stop at a gate and decides it.
func (s *argoStack) gate(name, gate, decision, approver string) {
	s.t.Helper()
	s.decide(name, s.atGate(name, gate), decision, approver)
}

// atGate waits until the workflow stops at a gate, and returns the gate's
// node.
func (s *argoStack) atGate(name, gate string) string {
	s.t.Helper()
	var id string
	s.wait(name, 10*time.Minute, func(wf *unstructured.Unstructured) bool {
		for _, n := range nodes(wf) {
			if n.Type == "Suspend" && n.Phase == "Running" && n.Inputs["gate"] == gate {
				id = n.ID
				return true
			}
		}
		return phase(wf) != "Running" && phase(wf) != "Pending" && phase(wf) != ""
	})
	if id == "" {
		s.t.Fatalf("workflow %s finished without stopping at the %s gate:\n%s", name, gate, describe(s.workflow(name)))
	}
	return id
}

// decide decides a gate as `argo node set W --node-field-selector
// displayName=gate --output-parameter decision=D --output-parameter
// approver=A` followed by `argo resume W --node-field-selector
// displayName=gate` do (workflow/util/util.go, updateSuspendedNode): the
// running suspend node gets the supplied values (and loses their valueFrom),
// then the phase Succeeded.
func (s *argoStack) decide(name, id, decision, approver string) {
	s.t.Helper()
	err := retryConflict(func() error {
		wf := s.workflow(name)
		n, _, _ := unstructured.NestedMap(wf.Object, "status", "nodes", id)
		outs, _, _ := unstructured.NestedSlice(n, "outputs", "parameters")
		for i, p := range outs {
			pm := p.(map[string]any)
			switch pm["name"] {
			case "decision":
				pm["value"] = decision
			case "approver":
				pm["value"] = approver
			}
			delete(pm, "valueFrom")
			outs[i] = pm
		}
		_ = unstructured.SetNestedSlice(n, outs, "outputs", "parameters")
		n["phase"] = "Succeeded"
		n["finishedAt"] = time.Now().UTC().Format(time.RFC3339)
		_ = unstructured.SetNestedMap(wf.Object, n, "status", "nodes", id)
		return s.cp.Client.Update(context.Background(), wf)
	})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Logf("%s: gate %sd by %s", name, decision, approver)
}

func retryConflict(f func() error) error {
	var err error
	for range 20 {
		if err = f(); err == nil || !strings.Contains(err.Error(), "the object has been modified") {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// terminate stops a workflow as `argo terminate` does: spec.shutdown
// Terminate (workflow/util/util.go, TerminateWorkflow).
func (s *argoStack) terminate(name string) {
	s.t.Helper()
	wf := s.workflow(name)
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"shutdown":"Terminate"}}`))
	if err := s.cp.Client.Patch(context.Background(), wf, patch); err != nil {
		s.t.Fatal(err)
	}
}
