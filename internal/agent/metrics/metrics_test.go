package metrics

import (
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/state"
)

// TestTextfileAndHTTPAgree: the one-shot textfile and the daemon's HTTP
// endpoint render the same state the same way.
func TestTextfileAndHTTPAgree(t *testing.T) {
	now := time.Unix(1700000000, 0).UTC()
	st := &state.State{
		Flake:          "git+https://h/r?ref=main#dns01",
		Applied:        &state.Generation{Commit: "abc", Number: 3, StorePath: "/nix/store/x"},
		LastSuccess:    now,
		LastCheck:      now,
		RebootRequired: true,
		Durations:      map[string]float64{"build": 1.5, "fetch": 0.25},
		Counters:       state.Counters{Applies: 2, Rollbacks: 1, Checks: 7, Failures: map[string]int64{"health": 1}},
		Last:           &state.Result{Outcome: "rolled-back", Stage: "health"},
	}
	path := filepath.Join(t.TempDir(), "text", "nix-gitops.prom")
	if err := WriteTextfile(path, st); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := &Collector{}
	c.Set(st)
	srv := httptest.NewServer(Handler(c))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	served, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`nix_gitops_applied_info{commit="abc",flake="git+https://h/r?ref=main#dns01",generation="3"} 1`,
		`nix_gitops_stage_duration_seconds{stage="build"} 1.5`,
		`nix_gitops_failures_total{stage="health"} 1`,
		`nix_gitops_failures_total{stage="build"} 0`,
		`nix_gitops_rollbacks_total 1`,
		`nix_gitops_reboot_required 1`,
		`nix_gitops_last_success_timestamp_seconds 1.7e+09`,
		`nix_gitops_last_outcome{outcome="rolled-back",stage="health"} 1`,
	} {
		if !strings.Contains(string(file), want+"\n") {
			t.Errorf("textfile lacks %s:\n%s", want, file)
		}
		if !strings.Contains(string(served), want+"\n") {
			t.Errorf("HTTP lacks %s", want)
		}
	}
}
