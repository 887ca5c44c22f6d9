package gitsource

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/config"
	"github.com/homelab-infra/homelab-infra/internal/agent/run"
	"github.com/homelab-infra/homelab-infra/internal/flakeref"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

func source(t *testing.T, ref string, method string) *Source {
	t.Helper()
	r, err := flakeref.Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	return &Source{Ref: r, Clone: filepath.Join(t.TempDir(), "repo.git"), Timeout: 30 * time.Second, Method: method,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Auth: config.Auth{TokenUser: "git"}}
}

// newRepo makes a stand-in flake repository (testflake) and a function
// that commits one version of host h1 to it.
func newRepo(t *testing.T) (string, *testflake.Repo, func(version string) string) {
	t.Helper()
	testenv.Real(t)
	testenv.LookPath(t, "git")
	dir := t.TempDir()
	repo, err := testflake.New(dir, testflake.Options{RecordDir: filepath.Join(dir, "rec")})
	if err != nil {
		t.Fatal(err)
	}
	return dir, repo, func(v string) string {
		sha, err := repo.Commit(testflake.Spec{Hosts: map[string]testflake.System{"h1": {Version: v}}}, testflake.CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return sha
	}
}

// TestHead: the in-process protocol-v2 ls-refs poll agrees with git
// ls-remote against the real git http-backend, starts no process, and
// falls back to git ls-remote when a server does not answer it.
func TestHead(t *testing.T) {
	dir, repo, commit := newRepo(t)
	sha := commit("1")
	backend := &testflake.Server{Root: dir}
	srv := httptest.NewServer(backend)
	defer srv.Close()
	// A server that answers our v2 request with HTML, like a proxy or an
	// old server might, and serves everything else with git.
	odd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.Header.Get("User-Agent") == "git/nix-gitops" {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, "<html>hello</html>")
			return
		}
		backend.ServeHTTP(w, r)
	}))
	defer odd.Close()

	cases := map[string]struct {
		reason  string
		ref     string
		method  string
		want    string
		procs   int64
		wantErr string
	}{
		"InProcess":     {reason: "http(s) with method auto: one request, no process", ref: "git+" + srv.URL + "/remote.git?ref=main#h1", method: "auto", want: sha, procs: 0},
		"InProcessHEAD": {reason: "no ref= follows the remote HEAD", ref: "git+" + srv.URL + "/remote.git#h1", method: "auto", want: sha, procs: 0},
		"GitMethod":     {reason: "method git spawns git ls-remote", ref: "git+" + srv.URL + "/remote.git?ref=main#h1", method: "git", want: sha, procs: 1},
		"File":          {reason: "file:// always uses git ls-remote", ref: "git+" + repo.URL() + "?ref=main#h1", method: "auto", want: sha, procs: 1},
		"Fallback":      {reason: "a server that does not answer v2 ls-refs gets git ls-remote", ref: "git+" + odd.URL + "/remote.git?ref=main#h1", method: "auto", want: sha, procs: 1},
		"MissingRef":    {reason: "a ref the remote lacks names the fix", ref: "git+" + srv.URL + "/remote.git?ref=nope#h1", method: "auto", wantErr: "the remote has no refs/heads/nope"},
		"MissingRefGit": {reason: "the same through git", ref: "git+" + repo.URL() + "?ref=nope#h1", method: "auto", wantErr: "the remote has no refs/heads/nope"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := source(t, tc.ref, tc.method)
			p0 := run.Started.Load()
			got, err := s.Head(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("%s: error = %v, want one containing %q", tc.reason, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("%s: Head = %q, %v; want %q", tc.reason, got, err, tc.want)
			}
			if n := run.Started.Load() - p0; n != tc.procs {
				t.Errorf("%s: %d processes started, want %d", tc.reason, n, tc.procs)
			}
		})
	}
}

// TestReachableOpensANewConnection: the poll keeps its connection alive
// between ticks, but the health gate's check after a switch must not reuse
// it: a switch that breaks name resolution (dns01 resolves the git server's
// name itself) or routes would pass a check on a connection opened before.
func TestReachableOpensANewConnection(t *testing.T) {
	dir, _, commit := newRepo(t)
	commit("1")
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(&testflake.Server{Root: dir})
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	s := source(t, "git+"+srv.URL+"/remote.git?ref=main#h1", "auto")
	for i := 0; i < 2; i++ {
		if _, err := s.Head(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("two polls opened %d connections, want 1 (kept alive)", n)
	}
	if err := s.Reachable(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("the gate's reachability check opened no new connection (%d in all): it would not see a broken resolver", n)
	}
}

// TestDenied: a remote that answers and refuses is ErrDenied, so the agent
// does not retry it; a remote that cannot be reached, or fails, is not.
// Real git (fetch and ls-remote) against the real git http-backend on
// loopback; the refusing and failing servers are thin handlers in front of it.
func TestDenied(t *testing.T) {
	dir, _, commit := newRepo(t)
	commit("1")
	locked := httptest.NewServer(&testflake.Server{Root: dir, Token: "sesame"})
	defer locked.Close()
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer forbidden.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "oops", http.StatusInternalServerError)
	}))
	defer broken.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	cases := map[string]struct {
		reason string
		ref    string
		method string
		denied bool
		hint   string
	}{
		"NoTokenGit":     {reason: "git, asked for credentials it has not got, refuses", ref: "git+" + locked.URL + "/remote.git?ref=main#h1", method: "git", denied: true, hint: "auth.tokenFile"},
		"NoTokenPoll":    {reason: "the in-process poll gets HTTP 401", ref: "git+" + locked.URL + "/remote.git?ref=main#h1", method: "auto", denied: true, hint: "auth.tokenFile"},
		"Forbidden":      {reason: "HTTP 403 to git", ref: "git+" + forbidden.URL + "/remote.git?ref=main#h1", method: "git", denied: true, hint: "auth.tokenFile"},
		"NoSuchRepo":     {reason: "a path that holds no repository", ref: "git+file://" + filepath.Join(dir, "nope.git") + "?ref=main#h1", method: "auto", denied: true, hint: "URL"},
		"ServerError":    {reason: "HTTP 500 may pass: retry", ref: "git+" + broken.URL + "/remote.git?ref=main#h1", method: "git"},
		"ServerErrPoll":  {reason: "HTTP 500 to the poll: retry", ref: "git+" + broken.URL + "/remote.git?ref=main#h1", method: "auto"},
		"NotListening":   {reason: "nothing listens yet (network not up): retry", ref: "git+" + closed.URL + "/remote.git?ref=main#h1", method: "git"},
		"NotListeningIn": {reason: "the same for the in-process poll", ref: "git+" + closed.URL + "/remote.git?ref=main#h1", method: "auto"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := source(t, tc.ref, tc.method)
			_, herr := s.Head(context.Background())
			_, ferr := s.Fetch(context.Background())
			for op, err := range map[string]error{"Head": herr, "Fetch": ferr} {
				if err == nil {
					t.Fatalf("%s: %s succeeded against a remote that must fail", tc.reason, op)
				}
				if got := errors.Is(err, ErrDenied); got != tc.denied {
					t.Errorf("%s: %s: errors.Is(err, ErrDenied) = %v, want %v; err: %v", tc.reason, op, got, tc.denied, err)
				}
				if tc.denied && !strings.Contains(err.Error(), tc.hint) {
					t.Errorf("%s: %s: the error must name %q: %v", tc.reason, op, tc.hint, err)
				}
			}
		})
	}
}

// TestFetchAndAncestry: Fetch brings exactly the tracked ref into the
// agent's clone; IsAncestor tells a fast-forward from a rewrite; BuildURL
// pins the rev on the clone.
func TestFetchAndAncestry(t *testing.T) {
	_, repo, commit := newRepo(t)
	c1 := commit("1")
	if _, err := testflake.Git(repo.Work, nil, "push", "-q", repo.Bare, "HEAD:refs/heads/other"); err != nil {
		t.Fatal(err)
	}
	s := source(t, "git+"+repo.URL()+"?ref=main&dir=nix#h1", "auto")
	got, err := s.Fetch(context.Background())
	if err != nil || got != c1 {
		t.Fatalf("Fetch = %q, %v; want %q", got, err, c1)
	}
	refs, err := testflake.Git(s.Clone, nil, "for-each-ref", "--format=%(refname)")
	if err != nil || refs != FetchedRef {
		t.Errorf("the clone holds refs %q, want only %s (fetch only the tracked ref)", refs, FetchedRef)
	}
	if err := s.Pin(context.Background(), c1); err != nil {
		t.Fatal(err)
	}
	c2 := commit("2")
	if got, _ := s.Fetch(context.Background()); got != c2 {
		t.Fatalf("second Fetch = %q, want %q", got, c2)
	}
	if ok, err := s.IsAncestor(context.Background(), c1, c2); !ok || err != nil {
		t.Errorf("c1 → c2 is a fast-forward: %v, %v", ok, err)
	}
	if err := repo.Reset(c1); err != nil {
		t.Fatal(err)
	}
	c3 := commit("3")
	if _, err := s.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.IsAncestor(context.Background(), c2, c3); ok || err != nil {
		t.Errorf("c2 → c3 (rewritten) is not a fast-forward: %v, %v", ok, err)
	}
	want := "git+file://" + s.Clone + "?ref=" + FetchedRef + "&rev=" + c3 + "&dir=nix"
	if got := s.BuildURL(c3); got != want {
		t.Errorf("BuildURL = %q, want %q", got, want)
	}
}
