//go:build vm

package vm

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// gitServer serves the repositories under root over git's smart HTTP
// protocol (testflake.Server: the real `git http-backend`) on host loopback
// only; the guest reaches it through a guestfwd.
//
// Two test controls sit beside it (test only, never in a real server):
//   - GET /vmtest/advance/NAME moves the served branch to the commit the
//     test prepared under NAME and answers its id, so the probe in the
//     guest can step through commits within one boot;
//   - the first failFirst fetch requests answer 503, an outage that the
//     first-boot unit must survive;
//   - GET /vmtest/control/NAME runs the test's control NAME (controls), such
//     as bringing Vault back.
type gitServer struct {
	port      int
	srv       *http.Server
	backend   *testflake.Server
	done      chan error
	bare      string            // the served repository
	branch    string            // its branch the guest follows
	commits   map[string]string // NAME → commit, for /vmtest/advance
	failFirst atomic.Int64
	failed    atomic.Int64
	advanced  []string // names, in order
	controls  map[string]func() error
	mu        sync.Mutex
}

func startGitServer(root, bare, branch string, commits map[string]string) (*gitServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cannot listen for the git server: %w", err)
	}
	s := &gitServer{port: l.Addr().(*net.TCPAddr).Port, backend: &testflake.Server{Root: root}, done: make(chan error, 1),
		bare: bare, branch: branch, commits: commits, controls: map[string]func() error{}}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	go func() { s.done <- s.srv.Serve(l) }()
	return s, nil
}

func (s *gitServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if name, ok := strings.CutPrefix(r.URL.Path, "/vmtest/advance/"); ok {
		if err := s.advance(name); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, s.commits[name])
		return
	}
	if name, ok := strings.CutPrefix(r.URL.Path, "/vmtest/control/"); ok {
		f, ok := s.controls[name]
		if !ok {
			http.Error(w, "no control "+name, http.StatusNotFound)
			return
		}
		if err := f(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "done")
		return
	}
	if r.Method == http.MethodPost && s.failed.Load() < s.failFirst.Load() {
		s.failed.Add(1)
		http.Error(w, "down for a while (vmtest)", http.StatusServiceUnavailable)
		return
	}
	s.backend.ServeHTTP(w, r)
}

// advance points the served branch at the commit prepared as name.
func (s *gitServer) advance(name string) error {
	sha, ok := s.commits[name]
	if !ok {
		return fmt.Errorf("no commit prepared as %q", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := testflake.Git(filepath.Dir(s.bare), nil, "--git-dir", s.bare, "update-ref", "refs/heads/"+s.branch, sha); err != nil {
		return err
	}
	s.advanced = append(s.advanced, name)
	return nil
}

// close stops the server and waits until its port is released.
func (s *gitServer) close() error {
	err := s.srv.Close()
	if e := <-s.done; !errors.Is(e, http.ErrServerClosed) {
		err = errors.Join(err, e)
	}
	return err
}

// denyListener listens on every host address and counts connections: the
// guest must never reach it, neither through slirp's host alias nor the
// host's own address.
type denyListener struct {
	l        net.Listener
	port     int
	accepted atomic.Int64
	done     chan struct{}
}

func startDenyListener() (*denyListener, error) {
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		return nil, fmt.Errorf("cannot listen for the isolation check: %w", err)
	}
	d := &denyListener{l: l, port: l.Addr().(*net.TCPAddr).Port, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			d.accepted.Add(1)
			_ = c.Close()
		}
	}()
	return d, nil
}

func (d *denyListener) close() error {
	err := d.l.Close()
	<-d.done
	return err
}

// hostAddress is an address of this machine other than loopback: the guest
// tries it and must fail, so a broken restrict=on cannot go unnoticed. It
// sends nothing off the machine either way.
func hostAddress() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("cannot list the host's addresses: %w", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String(), nil
		}
	}
	return "", errors.New("the host has no non-loopback IPv4 address to test isolation against")
}

// portClosed reports whether nothing listens on 127.0.0.1:port any more.
func portClosed(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return true
	}
	_ = c.Close()
	return false
}
