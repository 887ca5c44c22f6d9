// floor.go: the oldest commit a machine may ever apply again.

package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// FloorFile holds the last applied commit, in the state folder but apart
// from state.json: a state.json that is lost or moved aside (the agent
// refuses one it cannot parse) must not reopen the door to commits older
// than what the machine already ran.
const FloorFile = "floor.json"

// Floor is FloorFile's content.
type Floor struct {
	Commit string `json:"commit"`
}

// floors are the commits every new head must descend from: the floor file
// (the last applied commit, durable) and the config's floorCommit (the
// template records the commit it was built from, so even a first boot
// refuses anything older).
func (a *Agent) floors() ([]string, error) {
	var out []string
	if a.Cfg.FloorCommit != "" {
		out = append(out, a.Cfg.FloorCommit)
	}
	b, err := os.ReadFile(filepath.Join(a.Cfg.StateDir, FloorFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("cannot read the floor commit: %w", err)
	default:
		var f Floor
		if err := json.Unmarshal(b, &f); err != nil || f.Commit == "" {
			return nil, fmt.Errorf("cannot parse %s (%v): move it aside only if you accept that this machine may apply older commits again", filepath.Join(a.Cfg.StateDir, FloorFile), err)
		}
		out = append(out, f.Commit)
	}
	return out, nil
}

// raiseFloor records commit, just applied, as the floor.
func (a *Agent) raiseFloor(commit string) {
	b, _ := json.Marshal(Floor{Commit: commit})
	if err := state.WriteFileAtomic(filepath.Join(a.Cfg.StateDir, FloorFile), append(b, '\n'), 0o600); err != nil {
		a.Log.Error("cannot record the floor commit", "err", err)
	}
}
