// Tests of Argo Workflows v4.0.5's lock manager (workflow/sync), the pinned
// module's own code: what workflows/rollout.yaml's locks rely on, and the two
// ways it loses locks that the template and TestArgo work around. Run by
// make rollout-e2e (cd hack/tools/argo && go test .).
package argo_test

import (
	"context"
	"fmt"
	"testing"

	wfv1 "github.com/argoproj/argo-workflows/v4/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v4/util/logging"
	argosync "github.com/argoproj/argo-workflows/v4/workflow/sync"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The rollout's locks, as workflows/rollout.yaml declares them: the group's
// mutex (the workflow's) and the in-flight semaphore of four slots (the
// hosts template's).
var (
	inFlight = &wfv1.Synchronization{Semaphores: []*wfv1.SemaphoreRef{{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "rollout-limits"}, Key: "in-flight"}}}}
	group = &wfv1.Synchronization{Mutexes: []*wfv1.Mutex{{Name: "rollout-web"}}}
)

const slots = 4

// manager is a controller's lock manager (no database: the rollout's locks
// are the controller's own, in memory) with the four slots.
func manager() *argosync.Manager {
	limit := func(context.Context, string) (int, error) { return slots, nil }
	return argosync.NewLockManager(ctx(), nil, "", nil, limit, func(string) {}, func(string) bool { return true })
}

func ctx() context.Context {
	return logging.WithLogger(context.Background(), logging.NewSlogLogger(logging.Error, logging.Text))
}

// rollout is a workflow with the rollout's locks in its own spec.
func rollout(name string) *wfv1.Workflow {
	return &wfv1.Workflow{ObjectMeta: metav1.ObjectMeta{Namespace: "rollouts", Name: name},
		Spec: wfv1.WorkflowSpec{Synchronization: group, Templates: []wfv1.Template{{Name: "hosts", Synchronization: inFlight}}}}
}

// free counts the in-flight slots another workflow can take.
func free(t *testing.T, sm *argosync.Manager) int {
	t.Helper()
	other := rollout("other")
	n := 0
	for i := range slots {
		ok, _, _, _, err := sm.TryAcquire(ctx(), other, fmt.Sprintf("other-%d", i), inFlight)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			n++
		}
	}
	return n
}

// TestReleaseAll: a workflow's end (ReleaseAll) gives back one
// template-level holder of a semaphore, but of two it keeps one
// (workflow/sync/sync_manager.go:515-517 ranges over the holders while
// LockReleased deletes from the same slice), and a halted wave's steps are
// still holders at the end. So the rollout's slot is the hosts step's, one
// per workflow at a time, not each host step's.
func TestReleaseAll(t *testing.T) {
	cases := map[string]struct {
		reason  string
		holders []string
		want    int
	}{
		"OneHolder": {
			reason:  "A workflow ending with one slot gives it back: what workflows/rollout.yaml relies on.",
			holders: []string{"a-hosts"},
			want:    slots,
		},
		"TwoHolders": {
			reason: "A workflow ending with two slots keeps one. If this fails, Argo gives both back: " +
				"a slot per host step would no longer leak (workflows/rollout.yaml, hosts).",
			holders: []string{"a-w2", "a-w3"},
			want:    slots - 1,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			sm := manager()
			a := rollout("a")
			for _, h := range tc.holders {
				if ok, _, msg, _, err := sm.TryAcquire(ctx(), a, h, inFlight); !ok || err != nil {
					t.Fatalf("%s cannot take a slot: %s %v", h, msg, err)
				}
			}
			sm.ReleaseAll(ctx(), a)
			if diff := cmp.Diff(tc.want, free(t, sm)); diff != "" {
				t.Errorf("%s\nfree slots after the workflow ended: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

// TestRestart: a restarted controller rebuilds its locks from the running
// workflows' status (Manager.Initialize), but for a workflow submitted by
// reference to a WorkflowTemplate (argo submit --from, a spec with only
// workflowTemplateRef) it cannot tell a lock's level from the spec
// (sync_manager.go:230-233 and 256-259 skip it). Such a workflow takes its
// locks back when the controller next processes it, before any other
// workflow asks: TestArgo's restart subtest submits the second rollout of
// the group after the restart, so the running one has asked first. A
// rollout submitted while the controller is down can win the race.
func TestRestart(t *testing.T) {
	cases := map[string]struct {
		reason      string
		byReference bool
		runningAsks bool
		wantSecond  bool
	}{
		"Inline": {
			reason:     "A workflow with its templates in its spec keeps the group's mutex across a restart.",
			wantSecond: false,
		},
		"ByReference": {
			reason: "A workflow submitted by reference loses the mutex at the restart: the second rollout takes it. " +
				"If this fails, Argo restores it: drop this caveat from README and TestArgo.",
			byReference: true,
			wantSecond:  true,
		},
		"ByReferenceAsksFirst": {
			reason:      "... unless the running workflow asks again first, as it does when the controller processes it.",
			byReference: true,
			runningAsks: true,
			wantSecond:  false,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			sm := manager()
			a := rollout("a")
			for _, l := range []struct {
				node string
				s    *wfv1.Synchronization
			}{{"", group}, {"a-hosts", inFlight}} {
				if ok, _, msg, _, err := sm.TryAcquire(ctx(), a, l.node, l.s); !ok || err != nil {
					t.Fatalf("the first rollout cannot take its lock: %s %v", msg, err)
				}
			}
			if tc.byReference {
				a.Spec = wfv1.WorkflowSpec{WorkflowTemplateRef: &wfv1.WorkflowTemplateRef{Name: "rollout"}}
			}
			restarted := manager()
			restarted.Initialize(ctx(), []wfv1.Workflow{*a})
			if tc.runningAsks {
				if ok, _, msg, _, err := restarted.TryAcquire(ctx(), a, "", group); !ok || err != nil {
					t.Fatalf("the first rollout cannot take its mutex back: %s %v", msg, err)
				}
			}
			second, _, _, _, err := restarted.TryAcquire(ctx(), rollout("b"), "", group)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantSecond, second); diff != "" {
				t.Errorf("%s\nthe second rollout of the group takes the mutex: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
