package rollout

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/schemacheck"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// TestWorkflowTemplate checks workflows/ against Argo Workflows' own CRD
// schemas (v4.0.5's full CRDs, from the module, by hack/schemas.sh) and
// against the policy it must agree with: the wave template's parallelism
// and the in-flight semaphore's size are the policy's, every template a
// step names exists, every step runs the one step image, and the running
// state's publisher judges staleness as the policy does. It is the fast
// check; test/rollout's TestArgo runs the template on real Argo.
func TestWorkflowTemplate(t *testing.T) {
	testenv.Real(t)
	root := testenv.RepoRoot(t)
	out, err := exec.Command(filepath.Join(root, "hack", "schemas.sh")).Output()
	if err != nil {
		t.Fatalf("cannot gather the CRD schemas (hack/schemas.sh): %v", err)
	}
	set, err := schemacheck.LoadDir(filepath.Join(strings.TrimSpace(string(out)), "argo-workflows"))
	if err != nil {
		t.Fatal(err)
	}
	pb, err := os.ReadFile(filepath.Join(root, PolicyPath))
	if err != nil {
		t.Fatal(err)
	}
	policy, err := ParsePolicy(pb)
	if err != nil {
		t.Fatal(err)
	}

	docs, err := repo.ReadDocs(filepath.Join(root, "workflows", "rollout.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("workflows/rollout.yaml: %d documents, want the WorkflowTemplate alone", len(docs))
	}
	wt := docs[0].Object
	if errs := set.Validate(context.Background(), wt); len(errs) > 0 {
		t.Errorf("workflows/rollout.yaml against Argo's CRD:\n%s", schemacheck.Messages(errs))
	}

	spec, _ := wt["spec"].(map[string]any)
	templates := map[string]map[string]any{}
	for _, x := range spec["templates"].([]any) {
		tm := x.(map[string]any)
		templates[tm["name"].(string)] = tm
	}
	for _, name := range []string{spec["entrypoint"].(string), spec["onExit"].(string)} {
		if templates[name] == nil {
			t.Errorf("spec names template %q, which does not exist", name)
		}
	}
	for name, tm := range templates {
		groups, _ := tm["steps"].([]any)
		for _, g := range groups {
			for _, st := range g.([]any) {
				ref := st.(map[string]any)["template"].(string)
				if templates[ref] == nil {
					t.Errorf("template %s: a step names template %q, which does not exist", name, ref)
				}
			}
		}
	}
	if got := templates["wave"]["parallelism"]; got != int64(policy.Parallelism) && got != float64(policy.Parallelism) {
		t.Errorf("the wave template's parallelism is %v, the policy's %d: keep them equal", got, policy.Parallelism)
	}
	for _, name := range []string{"waves", "reboots"} {
		if templates[name]["parallelism"] != int64(1) && templates[name]["parallelism"] != float64(1) || templates[name]["failFast"] != true {
			t.Errorf("template %s must run one item at a time and stop at the first failure: parallelism %v, failFast %v",
				name, templates[name]["parallelism"], templates[name]["failFast"])
		}
	}
	for name, tm := range templates {
		if _, ok := tm["suspend"]; ok && tm["retryStrategy"] != nil {
			t.Errorf("gate %s has a retryStrategy: a retried suspend loses its supplied output", name)
		}
	}

	limits, err := repo.ReadDocs(filepath.Join(root, "workflows", "rollout-limits.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := limits[0].Object["data"].(map[string]any)
	if got, want := data["in-flight"], strconv.Itoa(policy.MaxInFlight); got != want {
		t.Errorf("ConfigMap rollout-limits in-flight is %v, the policy's maxInFlight %s: keep them equal", got, want)
	}
	sem := templates["host"]["synchronization"].(map[string]any)["semaphores"].([]any)[0].(map[string]any)["configMapKeyRef"].(map[string]any)
	if sem["name"] != limits[0].Object["metadata"].(map[string]any)["name"] || sem["key"] != "in-flight" {
		t.Errorf("the host template's semaphore is %v, not rollout-limits' in-flight", sem)
	}
	if !slices.Contains([]string{"rollouts"}, limits[0].Object["metadata"].(map[string]any)["namespace"].(string)) {
		t.Errorf("rollout-limits must be in the WorkflowTemplate's namespace, rollouts")
	}

	// One step image (hack/packages.sh builds and pushes it), run by its
	// path: without a command Argo would look the entrypoint up in the
	// image's registry.
	images := map[string]bool{}
	for name, tm := range templates {
		if c, ok := tm["container"].(map[string]any); ok {
			images[fmt.Sprint(c["image"])] = true
			if cmd, _ := c["command"].([]any); len(cmd) != 1 || cmd[0] != "/labctl" {
				t.Errorf("template %s runs %v; want command [/labctl]", name, c["command"])
			}
		}
	}
	state, err := repo.ReadDocs(filepath.Join(root, "workflows", "running-state.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range state {
		if d.Object["kind"] != "Deployment" {
			continue
		}
		c := d.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
		images[fmt.Sprint(c["image"])] = true
		var staleAfter time.Duration
		for _, a := range c["args"].([]any) {
			if v, ok := strings.CutPrefix(fmt.Sprint(a), "--stale-after="); ok {
				staleAfter, _ = time.ParseDuration(v)
			}
		}
		if staleAfter != policy.StaleAfter.D() {
			t.Errorf("running-state's publisher runs %v; want --stale-after=%s, the policy's staleAfter", c["args"], policy.StaleAfter.D())
		}
	}
	if len(images) != 1 {
		t.Errorf("workflows/ runs %d images %v; want the one step image", len(images), images)
	}
}
