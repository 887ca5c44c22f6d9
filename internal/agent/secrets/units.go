package secrets

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/run"
)

// Units restarts units. The real one is Systemctl; tests of the stage's
// logic use a recorder of this interface (systemd cannot run as PID 1 in
// the test process; test/vm runs the real one).
type Units interface {
	// Restart restarts, in one job, those of units that are running or
	// failed, and returns them. Inactive units stay as they are.
	Restart(ctx context.Context, units []string) ([]string, error)
}

// ErrNoSystemd is Restart's answer where systemd is not PID 1.
var ErrNoSystemd = errors.New("no systemd")

// Systemctl is the real Units.
type Systemctl struct{}

// Restart implements Units: `systemctl is-active` tells which units run
// (or failed: a restart may be what they need), and one `systemctl restart`
// restarts them together.
func (Systemctl) Restart(ctx context.Context, units []string) ([]string, error) {
	if fi, err := os.Lstat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return nil, ErrNoSystemd
	}
	env := run.Environ("LC_ALL=C", "SYSTEMD_PAGER=")
	out, _ := run.Output(ctx, run.Cmd{Name: "systemctl", Args: append([]string{"is-active", "--"}, units...), Env: env, Timeout: 30 * time.Second})
	states := strings.Fields(string(out))
	var restart []string
	for i, u := range units {
		if i < len(states) && states[i] != "inactive" && states[i] != "unknown" {
			restart = append(restart, u)
		}
	}
	if len(restart) == 0 {
		return nil, nil
	}
	_, err := run.Output(ctx, run.Cmd{Name: "systemctl", Args: append([]string{"restart", "--"}, restart...), Env: env, Timeout: 5 * time.Minute})
	return restart, err
}
