package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeSystemd is a fake of the Systemd interface (the one the issue
// allows): it answers from a script of states, one per call.
type fakeSystemd struct {
	booted bool
	states []string          // is-system-running answers, in order; the last repeats
	units  map[string]string // is-active answers
	failed []string
	jobs   []Job
	askErr error
	asked  int
}

func (f *fakeSystemd) Booted() bool { return f.booted }

func (f *fakeSystemd) SystemState(context.Context) (string, error) {
	if f.askErr != nil {
		return "", f.askErr
	}
	s := f.states[min(f.asked, len(f.states)-1)]
	f.asked++
	return s, nil
}

func (f *fakeSystemd) UnitState(_ context.Context, u string) (string, error) {
	if s, ok := f.units[u]; ok {
		return s, nil
	}
	return "inactive", nil
}

func (f *fakeSystemd) FailedUnits(context.Context) ([]string, error) { return f.failed, nil }

func (f *fakeSystemd) Jobs(context.Context) ([]Job, error) { return f.jobs, nil }

func TestGate(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer bad.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	dir := t.TempDir()
	failScript := filepath.Join(dir, "fail.sh")
	okScript := filepath.Join(dir, "ok.sh")
	if err := os.WriteFile(failScript, []byte("#!/bin/sh\necho broken >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(okScript, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	cases := map[string]struct {
		reason string
		gate   Gate
		want   []Check // Detail compared by prefix
	}{
		"NoSystemd": {
			reason: "where systemd is not PID 1 its checks are skipped, the others still run",
			gate:   Gate{Systemd: &fakeSystemd{}, CheckSystemd: true, RequiredUnits: []string{"sshd.service"}, TCP: []string{ln.Addr().String()}},
			want: []Check{{Name: "systemd", Status: "skipped", Detail: "skipped: no systemd"}, {Name: "unit sshd.service", Status: "skipped", Detail: "skipped: no systemd"},
				{Name: "tcp " + ln.Addr().String(), Status: "ok"}},
		},
		"Running": {
			reason: "a running system and active units pass",
			gate:   Gate{Systemd: &fakeSystemd{booted: true, states: []string{"running"}, units: map[string]string{"sshd.service": "active"}}, CheckSystemd: true, RequiredUnits: []string{"sshd.service"}},
			want:   []Check{{Name: "systemd", Status: "ok"}, {Name: "unit sshd.service", Status: "ok"}},
		},
		"StartingThenRunning": {
			reason: "a system still starting after the switch is waited for",
			gate:   Gate{Systemd: &fakeSystemd{booted: true, states: []string{"starting", "starting", "running"}}, CheckSystemd: true, Settle: 5 * time.Second},
			want:   []Check{{Name: "systemd", Status: "ok"}},
		},
		"FirstBootOwnJob": {
			reason: "at first boot the agent's own start job keeps the system 'starting': with no failed unit and no other running job, that is settled",
			gate: Gate{Systemd: &fakeSystemd{booted: true, states: []string{"starting"}, jobs: []Job{{Unit: "nix-gitops-apply.service", State: "running"}, {Unit: "multi-user.target", State: "waiting"}}},
				OwnUnit: "nix-gitops-apply.service", CheckSystemd: true, Settle: 50 * time.Millisecond},
			want: []Check{{Name: "systemd", Status: "ok"}},
		},
		"StartingOtherJob": {
			reason: "another job still running is waited for, and named when the settle time is up",
			gate: Gate{Systemd: &fakeSystemd{booted: true, states: []string{"starting"}, jobs: []Job{{Unit: "nix-gitops-apply.service", State: "running"}, {Unit: "cloud-final.service", State: "running"}}},
				OwnUnit: "nix-gitops-apply.service", CheckSystemd: true, Settle: 50 * time.Millisecond},
			want: []Check{{Name: "systemd", Status: "failed", Detail: "system is starting; jobs still running: cloud-final.service"}},
		},
		"StartingFailedUnit": {
			reason: "a unit that failed during boot fails the gate even while the boot is 'starting'",
			gate: Gate{Systemd: &fakeSystemd{booted: true, states: []string{"starting"}, failed: []string{"unbound.service"}, jobs: []Job{{Unit: "nix-gitops-apply.service", State: "running"}}},
				OwnUnit: "nix-gitops-apply.service", CheckSystemd: true, Settle: 50 * time.Millisecond},
			want: []Check{{Name: "systemd", Status: "failed", Detail: "system is starting; failed units: unbound.service"}},
		},
		"Degraded": {
			reason: "degraded fails, naming the failed units",
			gate:   Gate{Systemd: &fakeSystemd{booted: true, states: []string{"degraded"}, failed: []string{"nginx.service"}}, CheckSystemd: true, Settle: 50 * time.Millisecond},
			want:   []Check{{Name: "systemd", Status: "failed", Detail: "system is degraded; failed units: nginx.service"}},
		},
		"SystemdUnanswering": {
			reason: "systemd that cannot be asked fails the check",
			gate:   Gate{Systemd: &fakeSystemd{booted: true, askErr: errors.New("no bus")}, CheckSystemd: true},
			want:   []Check{{Name: "systemd", Status: "failed", Detail: "cannot ask systemd: no bus"}},
		},
		"UnitFailed": {
			reason: "a required unit that is not active fails",
			gate:   Gate{Systemd: &fakeSystemd{booted: true, units: map[string]string{"unbound.service": "failed"}}, RequiredUnits: []string{"unbound.service"}, Settle: 50 * time.Millisecond},
			want:   []Check{{Name: "unit unbound.service", Status: "failed", Detail: "unbound.service is failed"}},
		},
		"Probes": {
			reason: "TCP, HTTP and script checks pass and fail on their own",
			gate: Gate{TCP: []string{closedAddr}, HTTP: []string{ok.URL, bad.URL}, Script: failScript, Settle: 50 * time.Millisecond,
				GitReachable: func(context.Context) error { return errors.New("no route") }},
			want: []Check{{Name: "tcp " + closedAddr, Status: "failed", Detail: "dial tcp"}, {Name: "http " + ok.URL, Status: "ok"},
				{Name: "http " + bad.URL, Status: "failed", Detail: "HTTP 503"}, {Name: "script " + failScript, Status: "failed", Detail: "fail.sh: exit status 3: broken"},
				{Name: "git reachable", Status: "failed", Detail: "no route"}},
		},
		"ScriptOK": {
			reason: "a script that exits 0 passes",
			gate:   Gate{Script: okScript, GitReachable: func(context.Context) error { return nil }},
			want:   []Check{{Name: "script " + okScript, Status: "ok"}, {Name: "git reachable", Status: "ok"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tc.gate.Interval = 10 * time.Millisecond
			got := tc.gate.Run(context.Background())
			prefix := cmp.Comparer(func(a, b string) bool { return strings.HasPrefix(a, b) || strings.HasPrefix(b, a) })
			if diff := cmp.Diff(tc.want, []Check(got), prefix); diff != "" {
				t.Errorf("%s: -want, +got:\n%s", tc.reason, diff)
			}
			failed := false
			for _, c := range tc.want {
				failed = failed || c.Status == "failed"
			}
			if (got.Err() != nil) != failed {
				t.Errorf("%s: Err() = %v, want an error: %v", tc.reason, got.Err(), failed)
			}
		})
	}
}
