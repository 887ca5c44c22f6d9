package testflake

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

type buildError struct {
	err    error
	stderr string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.stderr }

// TestStandInFlake builds the stand-in toplevel (the fake named in the
// package comment) with real git and real nix, then runs its
// switch-to-configuration the way the agent does.
func TestStandInFlake(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "git")
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec")
	r, err := New(dir, Options{RecordDir: rec, Subdir: "nix"})
	if err != nil {
		t.Fatal(err)
	}
	good, err := r.Commit(Spec{Hosts: map[string]System{
		"h1": {Version: "1", Kernel: "k1", Degrade: true}, // no systemd here: Degrade must be a no-op
		"h2": {Version: "1", SwitchExit: 3},
	}}, CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The flake is in a sub-folder, as with dir=.
	out, err := buildDir(t, r, good, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(read(t, filepath.Join(out, "kernel"))); got != "k1" {
		t.Errorf("kernel file = %q, want k1", got)
	}
	if err := exec.Command(filepath.Join(out, "bin", "switch-to-configuration"), "switch").Run(); err != nil {
		t.Fatalf("switch-to-configuration switch: %v", err)
	}
	if Current(rec) != out || BootDefault(rec) != out {
		t.Errorf("after switch: current %q, boot %q, want both %q", Current(rec), BootDefault(rec), out)
	}

	failing, err := buildDir(t, r, good, "h2")
	if err != nil {
		t.Fatal(err)
	}
	err = exec.Command(filepath.Join(failing, "bin", "switch-to-configuration"), "switch").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("switch of a SwitchExit=3 system: %v, want exit status 3", err)
	}
	if err := exec.Command(filepath.Join(out, "bin", "switch-to-configuration"), "boot").Run(); err != nil {
		t.Fatal(err)
	}
	calls, err := Calls(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := Join(Succeeded("switch", out), Failed("switch", failing), Succeeded("boot", out))
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("recorded calls: -want, +got:\n%s", diff)
	}
	if Current(rec) != out {
		t.Errorf("a failed switch must not change current: %q", Current(rec))
	}

	// A broken build and a broken eval fail, each with its own message.
	broken, err := r.Commit(Spec{Hosts: map[string]System{"h1": {Version: "2", BuildFail: true}, "h2": {EvalError: true}}}, CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := buildDir(t, r, broken, "h1"); err == nil || !strings.Contains(err.Error(), "build fails on purpose") {
		t.Errorf("BuildFail: err = %v", err)
	}
	if _, err := buildDir(t, r, broken, "h2"); err == nil || !strings.Contains(err.Error(), "fails to evaluate on purpose") {
		t.Errorf("EvalError: err = %v", err)
	}

	// A held build waits for its release file, then ends at once, not
	// after BuildSleep.
	release := filepath.Join(dir, "release")
	held, err := r.Commit(Spec{Hosts: map[string]System{"h1": {Version: "3", BuildSleep: 600, BuildRelease: release}, "h2": {Version: "3"}}}, CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	released := make(chan time.Time, 1)
	go func() {
		time.Sleep(3 * time.Second)
		if err := os.WriteFile(release, nil, 0o644); err != nil {
			t.Error(err)
		}
		released <- time.Now()
	}()
	if _, err := buildDir(t, r, held, "h1"); err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	if at := <-released; end.Before(at) {
		t.Errorf("the held build ended %s after its start, before its release (%s)", end.Sub(start), at.Sub(start))
	}
	if d := end.Sub(start); d > 2*time.Minute {
		t.Errorf("the held build took %s after its release at 3 s; want it to end within seconds, not sleep BuildSleep through", d)
	}

	// Reset force-pushes the branch back.
	if err := r.Reset(good); err != nil {
		t.Fatal(err)
	}
	head, err := Git(dir, nil, "--git-dir", r.Bare, "rev-parse", "refs/heads/main")
	if err != nil || head != good {
		t.Errorf("after Reset the remote branch is %q (%v), want %q", head, err, good)
	}
}

func buildDir(t *testing.T, r *Repo, rev, host string) (string, error) {
	t.Helper()
	nix := testenv.LookPath(t, "nix")
	cmd := exec.Command(nix, "build", "--no-link", "--json",
		"git+"+r.URL()+"?ref=refs/heads/"+r.Branch+"&rev="+rev+dirParam(r)+"#nixosConfigurations."+host+".config.system.build.toplevel")
	cmd.Env = append(os.Environ(), "NIX_CONFIG="+NixConf, "XDG_CACHE_HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", &buildError{err: err, stderr: stderr.String()}
	}
	var res []struct {
		Outputs map[string]string `json:"outputs"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res) != 1 {
		t.Fatalf("cannot parse nix build --json output %q: %v", out, err)
	}
	return res[0].Outputs["out"], nil
}

// TestHTTPServer clones over smart HTTP from the real git http-backend,
// with and without the token.
func TestHTTPServer(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "git")
	dir := t.TempDir()
	r, err := New(dir, Options{RecordDir: filepath.Join(dir, "rec")})
	if err != nil {
		t.Fatal(err)
	}
	sha, err := r.Commit(Spec{Hosts: map[string]System{"h1": {Version: "1"}}}, CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&Server{Root: dir, Token: "s3cret"})
	defer srv.Close()
	if _, err := Git(dir, nil, "ls-remote", srv.URL+"/remote.git"); err == nil {
		t.Errorf("ls-remote without the token succeeded")
	}
	u := strings.Replace(srv.URL, "http://", "http://x:s3cret@", 1) + "/remote.git"
	got, err := Git(dir, []string{"GIT_PROTOCOL_FROM_USER=1"}, "-c", "protocol.version=2", "ls-remote", u, "refs/heads/main")
	if err != nil {
		t.Fatal(err)
	}
	if want := sha + "\trefs/heads/main"; got != want {
		t.Errorf("ls-remote = %q, want %q", got, want)
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func dirParam(r *Repo) string {
	if r.Subdir == "" {
		return ""
	}
	return "&dir=" + r.Subdir
}
