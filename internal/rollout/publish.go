// publish.go: the running state's way onto the claims. A small service
// (labctl rollout publish-state, in the cluster) reads every machine's state
// from Prometheus and writes it into a ConfigMap per machine in the claims'
// namespace; the composition function requires that ConfigMap and shows it
// on the claim (the function does no network I/O).

package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/homelab-infra/homelab-infra/internal/runningstate"
)

// Publisher writes machines' running states into ConfigMaps.
type Publisher struct {
	Verdicts   VerdictSource
	ConfigMaps corev1client.ConfigMapsGetter
	// Namespace is the claims' namespace.
	Namespace string
	// StaleAfter: a verdict older than this is stale (the policy's
	// staleAfter).
	StaleAfter time.Duration
	Log        *slog.Logger
	// Now is the clock [time.Now].
	Now func() time.Time
}

// Publish reads every machine's state (two Prometheus queries) and writes
// one ConfigMap per machine. A machine Prometheus no longer has (its agent
// stopped, its scrapes fail) keeps its last known state, marked stale:
// unknown is not converged.
func (p *Publisher) Publish(ctx context.Context) error {
	vs, err := p.Verdicts.Verdicts(ctx, nil)
	if err != nil {
		return err
	}
	runs, err := p.Verdicts.Running(ctx, nil)
	if err != nil {
		return err
	}
	cms := p.ConfigMaps.ConfigMaps(p.Namespace)
	known, err := cms.List(ctx, metav1.ListOptions{LabelSelector: runningstate.Label + "=true"})
	if err != nil {
		return fmt.Errorf("cannot list the running-state ConfigMaps in %s: %w", p.Namespace, err)
	}
	existing := map[string]*corev1.ConfigMap{}
	var last []runningstate.State
	for i := range known.Items {
		cm := &known.Items[i]
		existing[cm.Name] = cm
		st, _, err := runningstate.Parse(cm.Data)
		if err != nil {
			p.log().Warn("ignoring an unreadable running-state ConfigMap", "name", cm.Name, "err", err)
			continue
		}
		last = append(last, st)
	}
	states := publishedStates(vs, runs, last, p.StaleAfter)
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	var errs []error
	for h, s := range states {
		data := s.Data(now())
		name := runningstate.Name(h)
		if cm, ok := existing[name]; ok {
			cm = cm.DeepCopy()
			cm.Data = data
			_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		} else {
			_, err = cms.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: p.Namespace, Labels: map[string]string{runningstate.Label: "true"}},
				Data:       data}, metav1.CreateOptions{})
		}
		if err != nil && !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
			errs = append(errs, fmt.Errorf("cannot write %s/%s: %w", p.Namespace, name, err))
		}
	}
	converged := 0
	for _, st := range states {
		if st.Converged {
			converged++
		}
	}
	p.log().Info("published running states", "machines", len(states), "converged", converged)
	if len(errs) > 0 {
		return fmt.Errorf("%v", errs)
	}
	return nil
}

// publishedStates are the states to publish: every machine Prometheus
// has, and every machine published before that it no longer has, as last
// known but stale.
func publishedStates(vs map[string]Verdict, runs map[string]Run, last []runningstate.State, staleAfter time.Duration) map[string]runningstate.State {
	states := map[string]runningstate.State{}
	for h, v := range vs {
		// The commit the agent follows is what its ref asks for.
		states[h] = stateOf(h, v.Commit, v, runs[h], staleAfter)
	}
	for _, st := range last {
		if _, ok := states[st.Host]; !ok {
			st.Stale = true
			st.Judge()
			states[st.Host] = st
		}
	}
	return states
}

// Run publishes every interval until ctx ends; a failed round is logged
// and the next one tries again.
func (p *Publisher) Run(ctx context.Context, every time.Duration) error {
	for {
		if err := p.Publish(ctx); err != nil {
			p.log().Error("cannot publish the running states", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

func (p *Publisher) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}
