package testflake

import (
	"crypto/subtle"
	"net/http"
	"net/http/cgi"
	"os/exec"
	"strings"
	"sync/atomic"
)

// Server serves the git repositories under a folder over smart HTTP with
// the real `git http-backend` (through net/http/cgi), protocol v2 included.
// It is no fake: it is the CGI program git ships for web servers.
type Server struct {
	// Root is the folder whose repositories are served (GIT_PROJECT_ROOT).
	Root string
	// Token, when set, is required as the Basic-auth password.
	Token string
	// PushToken, when set, lets a push (receive-pack) in with it as the
	// Basic-auth password, as the Basic-auth user (git http-backend takes
	// pushes only from an authenticated REMOTE_USER); other pushes are
	// refused. Hooks in the repository see the user.
	PushToken string
	// Requests and BytesOut count what was served, for benchmarks.
	Requests, BytesOut atomic.Int64
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Requests.Add(1)
	if s.Token != "" {
		_, pw, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(pw), []byte(s.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="testflake"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
	}
	git, err := exec.LookPath("git")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	env := []string{"GIT_PROJECT_ROOT=" + s.Root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}
	if s.PushToken != "" && (strings.HasSuffix(r.URL.Path, "/git-receive-pack") || r.URL.Query().Get("service") == "git-receive-pack") {
		user, pw, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(pw), []byte(s.PushToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="testflake push"`)
			http.Error(w, "authentication required to push", http.StatusUnauthorized)
			return
		}
		env = append(env, "REMOTE_USER="+user)
	}
	if p := r.Header.Get("Git-Protocol"); p != "" {
		env = append(env, "GIT_PROTOCOL="+p)
	}
	h := &cgi.Handler{Path: git, Args: []string{"http-backend"}, Env: env}
	h.ServeHTTP(&countingWriter{ResponseWriter: w, n: &s.BytesOut}, r)
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}
