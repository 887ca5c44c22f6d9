//go:build vm

package vm

import (
	"fmt"
	"io"
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/vaulttest"
)

// vaultGate is the guest's way to the Vault dev server (internal/vaulttest,
// the real Vault): a port on host loopback, forwarded into the guest, that
// pipes each connection to the server, or while down closes it at once, as
// an unreachable Vault looks to the machine. The probe brings it up with the
// git server's control "vault-up"; it models nothing of Vault.
type vaultGate struct {
	port   int
	target string
	down   atomic.Bool
	ln     net.Listener
	wg     sync.WaitGroup
}

func startVaultGate(target string) (*vaultGate, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cannot listen for the Vault gate: %w", err)
	}
	g := &vaultGate{port: ln.Addr().(*net.TCPAddr).Port, target: target, ln: ln}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.wg.Add(1)
			go func() { defer g.wg.Done(); g.pipe(c) }()
		}
	}()
	return g, nil
}

func (g *vaultGate) pipe(c net.Conn) {
	defer c.Close()
	if g.down.Load() {
		return
	}
	up, err := net.Dial("tcp", g.target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// close stops listening and waits for the connections in flight.
func (g *vaultGate) close() error {
	err := g.ln.Close()
	g.wg.Wait()
	return err
}

// vaultAddr is where the guest reaches Vault (a guestfwd to the gate).
const vaultAddr = "10.0.2.101:8200"

// lab is the Vault side of the suite: the real dev server, set up as the
// README's Secrets section tells an operator (AppRole, KV v2, PKI), with
// the machine's role and one KV secret, the wrapping token of its first
// secret_id (what `labctl secrets bootstrap` puts in the claim's Secret),
// and the gate the guest reaches it through.
type vaultLab struct {
	srv    *vaulttest.Server
	host   vaulttest.Host
	token  string
	gate   *vaultGate
	secret string // the KV secret's value
}

// The KV secret a system declares (services.nix-gitops.secrets.app).
const (
	vaultSecretPath  = "hosts/dns01/app"
	vaultSecretField = "token"
)

func startVaultLab(t *testing.T, host string) *vaultLab {
	t.Helper()
	srv := vaulttest.Start(t)
	srv.Lab(t)
	v := &vaultLab{srv: srv, host: srv.AddHost(t, host, vaulttest.HostOptions{}), secret: "vm-suite-app-token-1"}
	srv.PutKV(t, vaultSecretPath, map[string]any{vaultSecretField: v.secret})
	// Long enough for the boots before the first system that declares a
	// secret, on a loaded machine.
	v.token = srv.WrappedSecretID(t, host, 6*time.Hour)
	g, err := startVaultGate(srv.HostPort())
	if err != nil {
		t.Fatal(err)
	}
	v.gate = g
	return v
}

// placeholderRE is the wrapping token labctl render shows in the user-data
// (it never reads the Secret that holds the real one).
var placeholderRE = regexp.MustCompile(`WRAPPING-TOKEN-FROM-SECRET-[A-Za-z0-9./_-]+`)

// withToken puts the real wrapping token where labctl render put its
// placeholder: the user-data the function renders once Crossplane hands it
// the claim's Secret.
func (v *vaultLab) withToken(t *testing.T, userData []byte) []byte {
	t.Helper()
	if n := len(placeholderRE.FindAll(userData, -1)); n != 1 {
		t.Fatalf("the rendered user-data holds %d wrapping-token placeholders, want 1:\n%s", n, userData)
	}
	return placeholderRE.ReplaceAll(userData, []byte(v.token))
}

// module is the host settings of a system that declares the secret and
// runs an app that needs it (it refuses to start without the file).
func (v *vaultLab) module(appVersion string) string {
	return fmt.Sprintf(`{
	  services.nix-gitops.enable = true;
	  services.nix-gitops.vault = { address = "http://%s"; roleId = %q; };
	  services.nix-gitops.secrets.app = { kv = { path = "secret/%s"; field = %q; }; restartUnits = [ "testflake-app.service" ]; };
	  systemd.services.testflake-app = {
	    description = "testflake app %s (reads its secret at start)";
	    wantedBy = [ "multi-user.target" ];
	    serviceConfig = { Type = "simple"; ExecStartPre = "/bin/test -s /run/nix-gitops/secrets/app"; ExecStart = "/bin/sleep infinity"; };
	    environment.APP = %q;
	  };
	}`, vaultAddr, v.host.RoleID, vaultSecretPath, vaultSecretField, appVersion, appVersion)
}
