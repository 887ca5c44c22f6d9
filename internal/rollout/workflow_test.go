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

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/schemacheck"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// TestWorkflowTemplate checks workflows/ against Argo Workflows' own CRD
// schemas (v4.0.5's full CRDs, from the module, by hack/schemas.sh) and
// against the policy it must agree with: the wave template's parallelism
// and the in-flight semaphore's size are the policy's, every template a
// step names exists, every step runs the one step image, and the running
// state's publisher judges staleness as the policy does, and the steps that
// wait for a verdict read it every `poll`. It is the fast
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
	if got := templates["hosts"]["parallelism"]; number(got) != policy.Parallelism {
		t.Errorf("the hosts template's parallelism is %v, the policy's %d: keep them equal", got, policy.Parallelism)
	}
	for _, name := range []string{"waves", "hosts", "reboots"} {
		if name == "hosts" {
			if templates[name]["failFast"] != true {
				t.Errorf("template hosts must start no machine after one failed: failFast %v", templates[name]["failFast"])
			}
			continue
		}
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
	// A slot of the in-flight semaphore is one wave moving machines, at
	// most parallelism of them.
	data, _ := limits[0].Object["data"].(map[string]any)
	slots, _ := strconv.Atoi(fmt.Sprint(data["in-flight"]))
	if slots*policy.Parallelism != policy.MaxInFlight {
		t.Errorf("ConfigMap rollout-limits in-flight is %v slots of parallelism %d machines, not the policy's maxInFlight %d: make it maxInFlight / parallelism",
			data["in-flight"], policy.Parallelism, policy.MaxInFlight)
	}
	var holders []string
	for name, tm := range templates {
		if sync, ok := tm["synchronization"].(map[string]any); ok && sync["semaphores"] != nil {
			holders = append(holders, name)
		}
	}
	slices.Sort(holders)
	if !cmp.Equal(holders, []string{"hosts"}) {
		t.Errorf("templates %v hold a semaphore; want the hosts template alone", holders)
	} else {
		sem := templates["hosts"]["synchronization"].(map[string]any)["semaphores"].([]any)[0].(map[string]any)["configMapKeyRef"].(map[string]any)
		if sem["name"] != limits[0].Object["metadata"].(map[string]any)["name"] || sem["key"] != "in-flight" {
			t.Errorf("the hosts template's semaphore is %v, not rollout-limits' in-flight", sem)
		}
		// Argo v4.0.5 gives back only one of two slots a finished
		// workflow still holds (workflow/sync/sync_manager.go:515-517),
		// and a halted wave's steps keep theirs to the end: one slot per
		// workflow at a time, or the fleet's slots leak away.
		for _, from := range []string{spec["entrypoint"].(string), spec["onExit"].(string)} {
			if n := concurrent(templates, from, "hosts"); n > 1 {
				t.Errorf("from %s, more than one hosts step can run at once in a workflow: each holds an in-flight slot, and Argo releases one of two at the workflow's end", from)
			}
		}
	}
	if !slices.Contains([]string{"rollouts"}, limits[0].Object["metadata"].(map[string]any)["namespace"].(string)) {
		t.Errorf("rollout-limits must be in the WorkflowTemplate's namespace, rollouts")
	}

	// The steps that wait for a machine's verdict (host, reboot) read it
	// every `poll` (a workflow parameter, labctl's default unless
	// submitted with another: TestArgo's rollouts poll every second).
	var poll any
	if args, ok := spec["arguments"].(map[string]any); ok {
		for _, p := range args["parameters"].([]any) {
			if pm := p.(map[string]any); pm["name"] == "poll" {
				poll = pm["value"]
			}
		}
	}
	if poll != "10s" {
		t.Errorf("the workflow's poll parameter defaults to %v; want 10s, labctl's --poll default", poll)
	}
	for _, name := range []string{"host", "reboot"} {
		c, _ := templates[name]["container"].(map[string]any)
		args, _ := c["args"].([]any)
		if i := slices.Index(args, any("--poll")); i < 0 || i+1 >= len(args) || args[i+1] != "{{workflow.parameters.poll}}" {
			t.Errorf("template %s runs %v; want --poll {{workflow.parameters.poll}}", name, args)
		}
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

// concurrent is how many runs of template name one run of template from
// can have at once: 0, 1, or 2 for more than one. A step with withParam,
// withItems or withSequence runs its template for each item, the steps of
// a group run together, and a template's parallelism caps its children in
// flight; step groups run one after the other.
func concurrent(templates map[string]map[string]any, from, name string) int {
	return concurrentDepth(templates, from, name, 0)
}

func concurrentDepth(templates map[string]map[string]any, from, name string, depth int) int {
	if from == name {
		return 1
	}
	tm := templates[from]
	if tm == nil || depth > len(templates) {
		return 0
	}
	most := 0
	for _, g := range groups(tm) {
		sum, widest := 0, 0
		for _, st := range g {
			ref, _ := st["template"].(string)
			// Runs of name in one child, and how many children the step
			// starts.
			n, children := concurrentDepth(templates, ref, name, depth+1), 1
			if st["withParam"] != nil || st["withItems"] != nil || st["withSequence"] != nil {
				children = 2
			}
			sum += n * children
			widest = max(widest, n)
		}
		if p := number(tm["parallelism"]); p > 0 {
			sum = min(sum, p*widest)
		}
		most = max(most, sum)
	}
	return min(most, 2)
}

// groups are a template's step groups, or its DAG's tasks as one group
// (they may all run at once).
func groups(tm map[string]any) [][]map[string]any {
	var out [][]map[string]any
	steps, _ := tm["steps"].([]any)
	for _, g := range steps {
		var group []map[string]any
		for _, st := range g.([]any) {
			group = append(group, st.(map[string]any))
		}
		out = append(out, group)
	}
	if dag, ok := tm["dag"].(map[string]any); ok {
		var group []map[string]any
		for _, st := range dag["tasks"].([]any) {
			group = append(group, st.(map[string]any))
		}
		out = append(out, group)
	}
	return out
}

// number reads a YAML number, whichever type the decoder gave it.
func number(v any) int {
	switch n := v.(type) {
	case int64:
		return int(n)
	case float64:
		return int(n)
	case int:
		return n
	}
	return 0
}

func TestConcurrent(t *testing.T) {
	cases := map[string]struct {
		reason    string
		templates string
		want      int
	}{
		"OneStep": {
			reason:    "A step naming the template runs it once.",
			templates: `{main: {steps: [[{name: a, template: held}]]}, held: {}}`,
			want:      1,
		},
		"SequentialGroups": {
			reason:    "Step groups run one after the other.",
			templates: `{main: {steps: [[{name: a, template: held}], [{name: b, template: held}]]}, held: {}}`,
			want:      1,
		},
		"TwoStepsOfAGroup": {
			reason:    "The steps of one group run together.",
			templates: `{main: {steps: [[{name: a, template: held}, {name: b, template: held}]]}, held: {}}`,
			want:      2,
		},
		"WithParam": {
			reason:    "A withParam step runs its template for every item at once.",
			templates: `{main: {steps: [[{name: a, template: held, withParam: "{{x}}"}]]}, held: {}}`,
			want:      2,
		},
		"WithParamParallelismOne": {
			reason:    "Parallelism 1 runs the items one at a time.",
			templates: `{main: {parallelism: 1, steps: [[{name: a, template: held, withParam: "{{x}}"}]]}, held: {}}`,
			want:      1,
		},
		"UnderAParallelParent": {
			reason:    "A template run once by each item of a parallel parent runs more than once at a time.",
			templates: `{main: {steps: [[{name: a, template: wave, withParam: "{{x}}"}]]}, wave: {steps: [[{name: h, template: held}]]}, held: {}}`,
			want:      2,
		},
		"UnderASerialParent": {
			reason:    "... and once at a time when the parent runs its items one at a time.",
			templates: `{main: {parallelism: 1, steps: [[{name: a, template: wave, withParam: "{{x}}"}]]}, wave: {steps: [[{name: h, template: held}]]}, held: {}}`,
			want:      1,
		},
		"Elsewhere": {
			reason:    "A template no step leads to does not run.",
			templates: `{main: {steps: [[{name: a, template: other}]]}, other: {}, held: {}}`,
			want:      0,
		},
		"DAG": {
			reason:    "A DAG's tasks may all run at once.",
			templates: `{main: {dag: {tasks: [{name: a, template: held}, {name: b, template: held}]}}, held: {}}`,
			want:      2,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var templates map[string]map[string]any
			if err := yaml.Unmarshal([]byte(tc.templates), &templates); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, concurrent(templates, "main", "held")); diff != "" {
				t.Errorf("%s\nconcurrent(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
