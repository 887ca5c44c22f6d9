package testflake

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/stcstandin"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// TestGuestSwitchStartsWhatIsNewlyWanted builds two NixOS-shaped toplevels
// (Options.Guest) with real nix and has the activation stand-in
// (internal/stcstandin) plan the switch from the first to the second, as
// the guest of the VM suite runs it: the running system's
// /etc/systemd/system is the first toplevel's, and the active units are
// those of a booted guest, each loaded from /etc/systemd/system when the
// system has the file there and from the guest's own /usr/lib/systemd/system
// otherwise, as systemd's unit search path makes it.
//
// switch-to-configuration starts a unit the new system newly wants only by
// starting the active target that wants it, and it starts only the active
// targets whose unit file is in /etc/systemd/system (where NixOS installs
// every target). So each target a system's units are wanted by must be in
// the toplevel's etc/systemd/system: without timers.target there, a switch
// that turns a timer on (the module's timer.enable) left it inactive, as
// the VM suite's boot 2 found.
func TestGuestSwitchStartsWhatIsNewlyWanted(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "git")
	nixBuild := testenv.LookPath(t, "nix-build")
	const (
		app   = "[Unit]\nDescription=app\n[Service]\nExecStart=/bin/sleep infinity\n"
		timer = "[Unit]\nDescription=tick\n[Timer]\nOnActiveSec=1h\n"
		tick  = "[Unit]\nDescription=tick\n[Service]\nType=oneshot\nExecStart=/bin/true\n"
	)
	base := System{
		SystemdFiles: map[string]string{"app.service": app},
		SystemdLinks: map[string]string{"multi-user.target.wants/app.service": "../app.service"},
	}
	with := func(files, links map[string]string) System {
		s := base
		s.SystemdFiles, s.SystemdLinks = map[string]string{}, map[string]string{}
		for k, v := range base.SystemdFiles {
			s.SystemdFiles[k] = v
		}
		for k, v := range base.SystemdLinks {
			s.SystemdLinks[k] = v
		}
		for k, v := range files {
			s.SystemdFiles[k] = v
		}
		for k, v := range links {
			s.SystemdLinks[k] = v
		}
		return s
	}
	// The units a booted guest of the first system has active: its targets
	// and its running service (the guest runs Debian's systemd, whose own
	// targets live in /usr/lib/systemd/system).
	active := []string{"multi-user.target", "timers.target", "app.service"}
	cases := map[string]struct {
		reason    string
		next      System
		wantStart []string
	}{
		"ServiceWantedByMultiUser": {
			reason:    "a service newly wanted by multi-user.target: the switch starts multi-user.target, which starts it",
			next:      with(map[string]string{"tick.service": tick}, map[string]string{"multi-user.target.wants/tick.service": "../tick.service"}),
			wantStart: []string{"multi-user.target", "timers.target"},
		},
		"TimerWantedByTimers": {
			reason: "a timer newly wanted by timers.target (the module's timer.enable turned on): the switch must start timers.target, which starts it",
			next: with(map[string]string{"tick.service": tick, "tick.timer": timer},
				map[string]string{"timers.target.wants/tick.timer": "../tick.timer"}),
			wantStart: []string{"multi-user.target", "timers.target"},
		},
	}
	r, err := New(t.TempDir(), Options{Guest: &Guest{STC: "/nonexistent/switch-to-configuration", Agent: "/bin/true"}})
	if err != nil {
		t.Fatal(err)
	}
	build := func(t *testing.T, s System) string {
		t.Helper()
		dir := t.TempDir()
		if err := r.WriteTemplateSystem(dir, "h", s); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(nixBuild, dir, "-A", "toplevel", "--no-out-link")
		cmd.Env = append(os.Environ(), "NIX_CONFIG="+NixConf)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("cannot build the toplevel: %v\n%s", err, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	cur := build(t, base)
	curDir := filepath.Join(cur, "etc/systemd/system")
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			next := build(t, tc.next)
			units := map[string]stcstandin.ActiveUnit{}
			for _, u := range active {
				frag := filepath.Join(curDir, u)
				if _, err := os.Stat(frag); err != nil {
					frag = filepath.Join("/usr/lib/systemd/system", u)
				}
				units[u] = stcstandin.ActiveUnit{Name: u, State: "active", SubState: "running", FragmentPath: frag}
			}
			lists := stcstandin.Lists{Dir: t.TempDir()}
			p := stcstandin.NewPlan(lists)
			if err := p.Collect(next, curDir, filepath.Join(next, "etc/systemd/system"), units, lists); err != nil {
				t.Fatal(err)
			}
			var got []string
			for u := range p.Start {
				got = append(got, u)
			}
			slices.Sort(got)
			if diff := cmp.Diff(tc.wantStart, got); diff != "" {
				t.Errorf("%s: units the switch starts (-want, +got):\n%s", tc.reason, diff)
			}
		})
	}
}
