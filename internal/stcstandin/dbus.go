package stcstandin

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
)

// Bus is the guest's systemd over D-Bus (upstream uses the same Manager
// calls: ListUnitsByPatterns, StartUnit/StopUnit/RestartUnit/ReloadUnit in
// "replace" mode with their JobRemoved results, ResetFailed, Reload,
// Reexecute).
type Bus struct{ c *sd.Conn }

// DialBus connects to systemd's private bus socket (root only, as the
// switch is).
func DialBus(ctx context.Context) (*Bus, error) {
	c, err := sd.NewSystemdConnectionContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to systemd: %w", err)
	}
	// systemd sends its signals (JobRemoved: a job's result) only to
	// subscribed clients; upstream subscribes first too (main.rs:1897).
	if err := c.Subscribe(); err != nil {
		c.Close()
		return nil, fmt.Errorf("cannot subscribe to systemd's signals: %w", err)
	}
	return &Bus{c: c}, nil
}

// Close closes the connection.
func (b *Bus) Close() { b.c.Close() }

// ActiveUnits implements Systemd (main.rs:286-342: units that follow no
// other, not inactive), with each one's FragmentPath (main.rs:1163).
func (b *Bus) ActiveUnits(ctx context.Context) (map[string]ActiveUnit, error) {
	units, err := b.c.ListUnitsContext(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]ActiveUnit{}
	for _, u := range units {
		if u.Followed != "" || u.ActiveState == "inactive" {
			continue
		}
		a := ActiveUnit{Name: u.Name, State: u.ActiveState, SubState: u.SubState}
		if p, err := b.c.GetUnitPropertyContext(ctx, u.Name, "FragmentPath"); err == nil {
			a.FragmentPath, _ = p.Value.Value().(string)
		}
		out[u.Name] = a
	}
	return out, nil
}

// Job implements Systemd.
func (b *Bus) Job(ctx context.Context, kind, unit string) (<-chan string, error) {
	ch := make(chan string, 1)
	var err error
	switch kind {
	case "start":
		_, err = b.c.StartUnitContext(ctx, unit, "replace", ch)
	case "stop":
		_, err = b.c.StopUnitContext(ctx, unit, "replace", ch)
	case "restart":
		_, err = b.c.RestartUnitContext(ctx, unit, "replace", ch)
	case "reload":
		_, err = b.c.ReloadUnitContext(ctx, unit, "replace", ch)
	default:
		err = fmt.Errorf("unknown job %s", kind)
	}
	return ch, err
}

// ResetFailed implements Systemd: the Manager's ResetFailed (main.rs:2349),
// through systemctl, which go-systemd has no call for.
func (b *Bus) ResetFailed(ctx context.Context) error {
	return exec.CommandContext(ctx, "systemctl", "reset-failed").Run()
}

// Reload implements Systemd (main.rs:2352): daemon-reload; the D-Bus call
// returns once systemd has reloaded.
func (b *Bus) Reload(ctx context.Context) error { return b.c.ReloadContext(ctx) }

// Reexecute implements Systemd (main.rs:2328).
func (b *Bus) Reexecute(ctx context.Context) error {
	return exec.CommandContext(ctx, "systemctl", "daemon-reexec").Run()
}

// IsActive implements Systemd (main.rs:1009 unit_is_active: active or
// activating).
func (b *Bus) IsActive(ctx context.Context, unit string) (bool, error) {
	p, err := b.c.GetUnitPropertyContext(ctx, unit, "ActiveState")
	if err != nil {
		return false, err
	}
	s, _ := p.Value.Value().(string)
	return s == "active" || s == "activating", nil
}

// ExecMainStatus implements Systemd (main.rs:2611-2623).
func (b *Bus) ExecMainStatus(ctx context.Context, unit string) (int, error) {
	p, err := b.c.GetServicePropertyContext(ctx, unit, "ExecMainStatus")
	if err != nil {
		return 0, err
	}
	n, _ := p.Value.Value().(int32)
	return int(n), nil
}

// Settle implements Systemd: upstream waits until 250 ms pass without a bus
// message, at most 90 s (main.rs:2587-2599); here, until systemd's job queue
// has not changed for 250 ms (a job that runs on, such as the agent's own
// start job during a first-boot switch, does not count), at most 90 s.
func (b *Bus) Settle(ctx context.Context) {
	deadline := time.Now().Add(90 * time.Second)
	last := "unknown"
	for time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		jobs, err := b.c.ListJobsContext(ctx)
		if err != nil {
			return
		}
		var ids []string
		for _, j := range jobs {
			ids = append(ids, fmt.Sprintf("%d", j.Id))
		}
		now := strings.Join(sortedList(ids), ",")
		if now == last {
			return
		}
		last = now
	}
}
