package stcstandin

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// recorder is a Systemd that records the calls (a test double of the
// D-Bus client; the VM suite runs the switch against the guest's systemd).
type recorder struct {
	calls  []string
	active map[string]ActiveUnit
	after  map[string]ActiveUnit
	result map[string]string // "kind unit" -> job result
	listed int
}

func (r *recorder) ActiveUnits(context.Context) (map[string]ActiveUnit, error) {
	r.listed++
	if r.listed > 1 && r.after != nil {
		return r.after, nil
	}
	return r.active, nil
}

func (r *recorder) Job(_ context.Context, kind, unit string) (<-chan string, error) {
	r.calls = append(r.calls, kind+" "+unit)
	ch := make(chan string, 1)
	res := r.result[kind+" "+unit]
	if res == "" {
		res = "done"
	}
	ch <- res
	return ch, nil
}
func (r *recorder) ResetFailed(context.Context) error {
	r.calls = append(r.calls, "reset-failed")
	return nil
}
func (r *recorder) Reload(context.Context) error {
	r.calls = append(r.calls, "daemon-reload")
	return nil
}
func (r *recorder) Reexecute(context.Context) error {
	r.calls = append(r.calls, "daemon-reexec")
	return nil
}
func (r *recorder) IsActive(context.Context, string) (bool, error) {
	return true, nil
}
func (r *recorder) ExecMainStatus(context.Context, string) (int, error) { return 1, nil }
func (r *recorder) Settle(context.Context)                              {}

// machine lays out a root with a running system and a new toplevel.
func machine(t *testing.T, cur, next map[string]string, preSwitch string) (Env, string) {
	t.Helper()
	root := t.TempDir()
	top := filepath.Join(root, "nix/store/new")
	writeUnits(t, filepath.Join(root, "etc/systemd/system"), cur)
	writeUnits(t, filepath.Join(top, "etc/systemd/system"), next)
	files := map[string]string{
		"etc/NIXOS": "",
		"run/current-system/init-interface-version": "systemd",
		"nix/store/new/init-interface-version":      "systemd",
		"nix/store/new/activate":                    "#!/bin/sh\necho activated >>\"$0.log\"\n",
		"nix/store/new/pre-switch":                  "#!/bin/sh\n" + preSwitch + "\n",
		"nix/store/new/install-bootloader":          "#!/bin/sh\necho \"$1\" >" + filepath.Join(root, "boot-default") + "\n",
	}
	for p, text := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The running systemd is the new system's: no re-execution.
	sd := filepath.Join(root, "systemd")
	writeUnits(t, filepath.Join(sd, "lib/systemd"), map[string]string{"systemd": ""})
	if err := os.MkdirAll(filepath.Join(root, "proc/1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(sd, "lib/systemd/systemd"), filepath.Join(root, "proc/1/exe")); err != nil {
		t.Fatal(err)
	}
	return Env{Root: root, Out: top, Toplevel: top, DistroID: "nixos", PreSwitchCheck: filepath.Join(top, "pre-switch"),
		InstallBootloader: filepath.Join(top, "install-bootloader"), Systemd: sd, NoSync: true}, root
}

func TestSwitch(t *testing.T) {
	app := map[string]string{"app.service": "[Service]\nExecStart=/bin/a\n", "multi-user.target": "[Unit]\nDescription=m\n"}
	app2 := map[string]string{"app.service": "[Service]\nExecStart=/bin/b\n", "multi-user.target": "[Unit]\nDescription=m\n"}
	running := func(root string) map[string]ActiveUnit {
		return map[string]ActiveUnit{
			"app.service":       {Name: "app.service", State: "active", FragmentPath: filepath.Join(root, "etc/systemd/system/app.service")},
			"multi-user.target": {Name: "multi-user.target", State: "active", FragmentPath: filepath.Join(root, "etc/systemd/system/multi-user.target")},
		}
	}
	cases := map[string]struct {
		reason    string
		action    string
		preSwitch string
		result    map[string]string
		failed    bool
		lock      bool
		want      int
		calls     []string
		out       string
	}{
		"Switch": {
			reason: "stop the changed unit, activate, forget failures, reload systemd, reactivation target, start the stopped unit and every active target",
			action: "switch", want: 0,
			calls: []string{"stop app.service", "reset-failed", "daemon-reload", "restart sysinit-reactivation.target", "start app.service", "start multi-user.target"},
			out:   "stopping the following units: app.service\nactivating the configuration...\nrestarting sysinit-reactivation.target\nstarting the following units: app.service\n",
		},
		"Boot":             {reason: "boot only installs the boot loader", action: "boot", want: 0},
		"Check":            {reason: "check only runs the pre-switch check", action: "check", want: 0},
		"PreSwitchFails":   {reason: "a failing pre-switch check (switch inhibitors) refuses, exit 1", action: "switch", preSwitch: "exit 1", want: 1, out: "Pre-switch checks failed\n"},
		"UnitFailsToStart": {reason: "a failed start job is exit 4", action: "switch", result: map[string]string{"start app.service": "failed"}, want: 4, out: "Failed to start app.service\n"},
		"FailedAfter":      {reason: "a unit failed after the switch is exit 4", action: "test", failed: true, want: 4, out: "warning: the following units failed: app.service\n"},
		"Locked":           {reason: "another switch holds the lock: errno EWOULDBLOCK", action: "switch", lock: true, want: int(syscall.EWOULDBLOCK), out: "Could not acquire lock\n"},
		"Usage":            {reason: "an unknown action", action: "frobnicate", want: 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e, root := machine(t, app, app2, tc.preSwitch)
			r := &recorder{active: running(root), result: tc.result}
			if tc.failed {
				r.after = map[string]ActiveUnit{"app.service": {Name: "app.service", State: "failed"}}
			}
			if tc.lock {
				if err := os.MkdirAll(filepath.Join(root, "run/nixos"), 0o755); err != nil {
					t.Fatal(err)
				}
				f, err := os.Create(filepath.Join(root, "run/nixos/switch-to-configuration.lock"))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			got := Switch(context.Background(), tc.action, e, r, &out)
			if got != tc.want {
				t.Errorf("%s: exit %d, want %d\n%s", tc.reason, got, tc.want, out.String())
			}
			if tc.calls != nil {
				if diff := cmp.Diff(tc.calls, r.calls); diff != "" {
					t.Errorf("%s: systemd calls -want, +got:\n%s", tc.reason, diff)
				}
			}
			if !strings.Contains(out.String(), tc.out) {
				t.Errorf("%s: output %q lacks %q", tc.reason, out.String(), tc.out)
			}
			_, err := os.Stat(filepath.Join(root, "boot-default"))
			if booted := err == nil; booted != (tc.action == "switch" || tc.action == "boot") && tc.want != 1 && !tc.lock {
				t.Errorf("%s: boot loader installed = %v", tc.reason, booted)
			}
		})
	}
}
