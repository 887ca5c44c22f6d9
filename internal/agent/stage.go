// stage.go: the seam for stages that run between build and switch.

package agent

import (
	"context"
	"errors"

	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// Candidate is a built system on its way to the switch: what a Stage sees.
type Candidate struct {
	Commit   string
	Toplevel string // the built store path, not yet in the profile
	// Previous is the generation the machine runs now and goes back to if
	// anything after this point fails; nil when converging from nothing.
	Previous *state.Generation
	// State is the run's state, where a stage records its own status
	// (never a secret).
	State *state.State
}

// Stage is a step between the build and the switch (Agent.PreSwitch), or
// right after the switch and before the health gate (Agent.AfterSwitch,
// where a failure rolls back), for
// example writing the secrets the new system needs. Nothing on the machine
// has changed yet when it runs, so a failure leaves the running system
// alone: the run ends with outcome "failed" at stage Name(), and the commit
// is remembered as bad, unless the error is Temporary, in which case it is
// tried again after a back-off.
type Stage interface {
	// Name is the stage's name in state.json, metrics and logs.
	Name() string
	// Run does the stage's work for c. It must honour ctx.
	Run(ctx context.Context, c Candidate) error
}

// temporary marks an error whose cause is outside the commit.
type temporary struct{ error }

func (t temporary) Unwrap() error { return t.error }

// Temporary marks err as caused by something outside the commit (a service
// not reachable yet, a timeout): the commit is retried after a back-off
// instead of being remembered as bad until the head moves.
func Temporary(err error) error {
	if err == nil {
		return nil
	}
	return temporary{err}
}

// IsTemporary reports whether err was marked Temporary.
func IsTemporary(err error) bool {
	var t temporary
	return errors.As(err, &t)
}
