// Package vaulttest starts a real Vault server for tests: `vault server -dev`
// (in memory, on loopback) built from the Go module proxy by
// hack/build-vault.sh. There is no fake Vault anywhere in the tests; this
// package only starts the real one and sets it up through its HTTP API with
// the official client, as an operator's Terraform or shell would.
//
// The binary comes from $VAULT_BIN (the folder hack/build-vault.sh prints, as
// `make vault-e2e` sets it), or else from running the script, which is
// instant when its cache is warm. Tests that use it are real-component
// tests: they skip under -short and fail otherwise when Vault cannot be had.
package vaulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Bin returns the path of the vault binary: $VAULT_BIN/vault, or the one
// hack/build-vault.sh builds (or finds in its cache).
func Bin(t testing.TB) string {
	t.Helper()
	testenv.Real(t)
	binOnce.Do(func() {
		dir := os.Getenv("VAULT_BIN")
		if dir == "" {
			root := testenv.RepoRoot(t)
			cmd := exec.Command(filepath.Join(root, "hack", "build-vault.sh"))
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				binErr = fmt.Errorf("cannot build Vault (hack/build-vault.sh): %w", err)
				return
			}
			dir = strings.TrimSpace(string(out))
		}
		binPath = filepath.Join(dir, "vault")
		if _, err := os.Stat(binPath); err != nil {
			binErr = fmt.Errorf("cannot find the vault binary: %w (set VAULT_BIN to the folder hack/build-vault.sh prints)", err)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// Server is one running dev-mode Vault.
type Server struct {
	// Addr is http://127.0.0.1:<port>.
	Addr string
	// RootToken is the dev server's root token: the operator's login in
	// tests. It is a secret of the test, and the secrets tests check that it
	// never reaches the agent.
	RootToken string
	// Root is a client logged in with RootToken.
	Root *api.Client

	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
}

// Start starts a dev-mode Vault on a free loopback port pair (it also binds
// the cluster port, port+1) and waits until it answers. It is stopped when
// the test ends; its log is printed if the test failed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Bin(t)
	home := t.TempDir()
	root := "root-" + randomHex(t, 12)
	var s *Server
	var lastErr error
	for range 5 { // a port pair may be taken between the check and the bind
		port := freePortPair(t)
		s = &Server{Addr: "http://127.0.0.1:" + strconv.Itoa(port), RootToken: root, log: &bytes.Buffer{}, done: make(chan struct{})}
		s.cmd = exec.Command(bin, "server", "-dev", "-dev-root-token-id="+root,
			"-dev-listen-address=127.0.0.1:"+strconv.Itoa(port), "-dev-no-store-token")
		// HOME: a dependency writes under $HOME/.cache. GODEBUG: a dependency's
		// CA certificate has a negative serial (../shared/vault/README.md).
		s.cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin", "GODEBUG=x509negativeserial=1"}
		s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
		if err := s.cmd.Start(); err != nil {
			t.Fatalf("cannot start vault: %v", err)
		}
		go func(s *Server) { _ = s.cmd.Wait(); close(s.done) }(s)
		if lastErr = s.waitReady(60 * time.Second); lastErr == nil {
			break
		}
		s.kill()
		t.Logf("vault did not come up (%v); retrying on other ports\n%s", lastErr, s.log.String())
		s = nil
	}
	if s == nil {
		t.Fatalf("cannot start vault: %v", lastErr)
	}
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("vault server log:\n%s", s.log.String())
		}
	})
	c, err := NewClient(s.Addr, s.RootToken)
	if err != nil {
		t.Fatal(err)
	}
	s.Root = c
	return s
}

func (s *Server) kill() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
	<-s.done
}

func (s *Server) waitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("vault exited")
		default:
		}
		resp, err := http.Get(s.Addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("sys/health: HTTP %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// NewClient is an official client for addr with token, immune to the
// VAULT_* variables of the test's environment.
func NewClient(addr, token string) (*api.Client, error) {
	cfg := &api.Config{Address: addr, HttpClient: &http.Client{Timeout: 30 * time.Second}, MaxRetries: 0}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot make a vault client: %w", err)
	}
	c.SetToken(token)
	c.ClearNamespace()
	return c, nil
}

// freePortPair returns a free port whose next port is free too: Vault's
// cluster listener is its API port plus one.
func freePortPair(t testing.TB) int {
	t.Helper()
	port, err := testenv.FreePortRun(2)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Write is a root-token write that fails the test on error.
func (s *Server) Write(t testing.TB, path string, data map[string]any) *api.Secret {
	t.Helper()
	sec, err := s.Root.Logical().WriteWithContext(context.Background(), path, data)
	if err != nil {
		t.Fatalf("vault write %s: %v", path, err)
	}
	return sec
}

// Read is a root-token read that fails the test on error.
func (s *Server) Read(t testing.TB, path string) *api.Secret {
	t.Helper()
	sec, err := s.Root.Logical().ReadWithContext(context.Background(), path)
	if err != nil {
		t.Fatalf("vault read %s: %v", path, err)
	}
	return sec
}
