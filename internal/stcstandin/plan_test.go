package stcstandin

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCollect runs the unit rules on a running system's /etc/systemd/system
// and a new toplevel's, both folders of unit files.
func TestCollect(t *testing.T) {
	const (
		oneshot = "[Service]\nType=oneshot\nExecStart=/bin/true\n"
		keep    = "[Service]\nExecStart=/bin/a\nX-RestartIfChanged=false\n"
	)
	cases := map[string]struct {
		reason    string
		cur, next map[string]string
		active    []string
		// elsewhere are active units loaded from outside
		// /etc/systemd/system (a distribution's /usr/lib/systemd/system).
		elsewhere []string
		want      Plan
	}{
		"Changed": {
			reason: "a changed service is stopped before the activation and started after it (X-StopIfChanged defaults to true)",
			cur:    map[string]string{"a.service": "[Service]\nExecStart=/bin/a\n"},
			next:   map[string]string{"a.service": "[Service]\nExecStart=/bin/b\n"},
			active: []string{"a.service"},
			want:   Plan{Stop: set("a.service"), Start: set("a.service")},
		},
		"NoStop": {
			reason: "X-StopIfChanged=false restarts after the activation instead",
			cur:    map[string]string{"a.service": "[Service]\nExecStart=/bin/a\n"},
			next:   map[string]string{"a.service": "[Service]\nExecStart=/bin/b\nX-StopIfChanged=false\n"},
			active: []string{"a.service"},
			want:   Plan{Restart: set("a.service")},
		},
		"NoRestart": {
			reason: "X-RestartIfChanged=false in [Service] leaves it running",
			cur:    map[string]string{"a.service": keep},
			next:   map[string]string{"a.service": keep + "Environment=X=1\n"},
			active: []string{"a.service"},
			want:   Plan{Skip: set("a.service")},
		},
		"NoRestartInWrongSection": {
			reason: "X-RestartIfChanged in [Unit] is not read: it is stopped and started",
			cur:    map[string]string{"a.service": "[Unit]\nX-RestartIfChanged=false\n[Service]\nExecStart=/bin/a\n"},
			next:   map[string]string{"a.service": "[Unit]\nX-RestartIfChanged=false\n[Service]\nExecStart=/bin/b\n"},
			active: []string{"a.service"},
			want:   Plan{Stop: set("a.service"), Start: set("a.service")},
		},
		"Reload": {
			reason: "X-ReloadIfChanged in [Service] reloads",
			cur:    map[string]string{"a.service": "[Service]\nExecStart=/bin/a\n"},
			next:   map[string]string{"a.service": "[Service]\nExecStart=/bin/b\nX-ReloadIfChanged=true\n"},
			active: []string{"a.service"},
			want:   Plan{Reload: set("a.service")},
		},
		"Removed": {
			reason: "a unit the new system lacks is stopped",
			cur:    map[string]string{"a.service": oneshot},
			next:   map[string]string{},
			active: []string{"a.service"},
			want:   Plan{Stop: set("a.service")},
		},
		"RemovedKept": {
			reason: "unless its current unit says X-StopOnRemoval=false in [Unit]",
			cur:    map[string]string{"a.service": "[Unit]\nX-StopOnRemoval=false\n" + oneshot},
			next:   map[string]string{},
			active: []string{"a.service"},
			want:   Plan{},
		},
		"Target": {
			reason: "every active target is started after the switch, and not listed",
			cur:    map[string]string{"multi-user.target": "[Unit]\nDescription=m\n"},
			next:   map[string]string{"multi-user.target": "[Unit]\nDescription=m\n"},
			active: []string{"multi-user.target"},
			want:   Plan{Start: set("multi-user.target"), Filter: set("multi-user.target")},
		},
		"TargetNotInEtc": {
			reason:    "an active target whose unit file is not in /etc/systemd/system is not started, even if the new system wants units of it (main.rs at 173582451f: the loop takes a unit only when current_base_unit_file exists; NixOS installs its targets there)",
			cur:       map[string]string{},
			next:      map[string]string{"t.timer": "[Timer]\nOnActiveSec=1h\n"},
			elsewhere: []string{"timers.target"},
			want:      Plan{},
		},
		"TargetRefuses": {
			reason: "not one that refuses manual starts",
			cur:    map[string]string{"x.target": "[Unit]\nRefuseManualStart=yes\n"},
			next:   map[string]string{"x.target": "[Unit]\nRefuseManualStart=yes\n"},
			active: []string{"x.target"},
			want:   Plan{},
		},
		"Inactive": {
			reason: "an inactive unit is not compared",
			cur:    map[string]string{"a.service": "[Service]\nExecStart=/bin/a\n"},
			next:   map[string]string{"a.service": "[Service]\nExecStart=/bin/b\n"},
			want:   Plan{},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			old := filepath.Join(root, "etc/systemd/system")
			top := filepath.Join(root, "toplevel")
			writeUnits(t, old, tc.cur)
			writeUnits(t, filepath.Join(top, "etc/systemd/system"), tc.next)
			active := map[string]ActiveUnit{}
			for _, u := range tc.active {
				active[u] = ActiveUnit{Name: u, State: "active", FragmentPath: filepath.Join(old, u)}
			}
			for _, u := range tc.elsewhere {
				active[u] = ActiveUnit{Name: u, State: "active", FragmentPath: filepath.Join(root, "usr/lib/systemd/system", u)}
			}
			lists := Lists{Dir: t.TempDir()}
			p := NewPlan(lists)
			if err := p.Collect(top, old, filepath.Join(top, "etc/systemd/system"), active, lists); err != nil {
				t.Fatal(err)
			}
			want := tc.want
			for _, m := range []*map[string]bool{&want.Stop, &want.Start, &want.Restart, &want.Reload, &want.Skip, &want.Filter} {
				if *m == nil {
					*m = map[string]bool{}
				}
			}
			if diff := cmp.Diff(&want, p); diff != "" {
				t.Errorf("%s: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func set(units ...string) map[string]bool {
	m := map[string]bool{}
	for _, u := range units {
		m[u] = true
	}
	return m
}

func writeUnits(t *testing.T, dir string, units map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, text := range units {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
