package harness

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndex(s, ")")+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !alive(pid) {
			return
		}
	}
	t.Errorf("process %d is still alive", pid)
}

// startShell runs script under /bin/sh and returns the pid the script
// writes to its "child" file (a process it forked).
func startShell(t *testing.T, script string) (*Process, int) {
	t.Helper()
	dir := t.TempDir()
	childFile := filepath.Join(dir, "child")
	p, err := StartProcess("sh", filepath.Join(dir, "sh.log"), []string{"CHILD=" + childFile}, "/bin/sh", "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(time.Second) })
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(childFile)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			return p, pid
		}
	}
	t.Fatalf("the script did not write its child's pid:\n%s", p.Tail(10))
	return nil, 0
}

func TestStopEndsTheProcessGroup(t *testing.T) {
	cases := map[string]struct {
		reason string
		script string
	}{
		"polite": {
			reason: "SIGTERM ends the leader and the child it forked",
			script: `sleep 300 & echo $! > "$CHILD"; wait`,
		},
		"stubborn": {
			reason: "a leader that ignores SIGTERM gets SIGKILL after the grace period",
			script: `trap '' TERM; sleep 300 & echo $! > "$CHILD"; while :; do sleep 0.05; done`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p, child := startShell(t, tc.script)
			start := time.Now()
			p.Stop(300 * time.Millisecond)
			if done, _ := p.Exited(); !done {
				t.Errorf("%s: the leader has not exited after Stop", tc.reason)
			}
			waitGone(t, p.Pid())
			waitGone(t, child)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("%s: Stop took %s", tc.reason, took)
			}
		})
	}
}

func TestStopAfterExitKillsLeftovers(t *testing.T) {
	// The leader exits at once, leaving its child in the group: Stop must
	// still reach the child.
	p, child := startShell(t, `sleep 300 & echo $! > "$CHILD"; exit 0`)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if done, _ := p.Exited(); done {
			break
		}
	}
	p.Stop(time.Second)
	waitGone(t, child)
}

func TestProcessIsolatedFromTestSignals(t *testing.T) {
	// The child runs in its own process group, so a signal to the test's
	// group (Ctrl-C in a terminal) is not what stops it; Stop or
	// Pdeathsig is.
	p, _ := startShell(t, `echo $$ > "$CHILD"; sleep 300`)
	pgid, err := syscall.Getpgid(p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	if pgid != p.Pid() || pgid == syscall.Getpgrp() {
		t.Errorf("want the child to lead its own process group, got pgid %d (child %d, test %d)", pgid, p.Pid(), syscall.Getpgrp())
	}
}

func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	var lines []string
	for i := range 100 {
		lines = append(lines, "line "+strconv.Itoa(i))
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(strings.Join(lines[97:], "\n"), tailFile(path, 3)); diff != "" {
		t.Errorf("tailFile(3): -want, +got:\n%s", diff)
	}
}

func TestPeakRSS(t *testing.T) {
	p, _ := startShell(t, `echo $$ > "$CHILD"; sleep 300`)
	peak, err := p.PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	if peak <= 0 {
		t.Errorf("PeakRSS: want a positive size, got %d", peak)
	}
	if err := p.ResetPeakRSS(); err != nil {
		t.Fatal(err)
	}
}

// TestIssuedCertificatesVerify checks the certificates the harness makes
// the way the function and Crossplane use them: a server certificate signed
// by a CA parsed from Crossplane's Secret format (an RSA PKCS#1 key, as
// `crossplane core init` writes it), verified for 127.0.0.1 and localhost.
func TestIssuedCertificatesVerify(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "crossplane-root-ca"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &rsaKey.PublicKey, rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ParseCA(pemBlock("CERTIFICATE", der), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}))
	if err != nil {
		t.Fatal(err)
	}
	srvCert, srvKey, err := ca.Issue(CertSpec{CommonName: "function-machine", Hosts: []string{"127.0.0.1", "localhost"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	cliCert, cliKey, err := ca.Issue(CertSpec{CommonName: "crossplane", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	for _, c := range []struct {
		cert, key []byte
		usage     x509.ExtKeyUsage
		host      string
	}{
		{srvCert, srvKey, x509.ExtKeyUsageServerAuth, "127.0.0.1"},
		{srvCert, srvKey, x509.ExtKeyUsageServerAuth, "localhost"},
		{cliCert, cliKey, x509.ExtKeyUsageClientAuth, ""},
	} {
		pair, err := tls.X509KeyPair(c.cert, c.key)
		if err != nil {
			t.Fatalf("cannot load the issued key pair: %v", err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: c.host, KeyUsages: []x509.ExtKeyUsage{c.usage}}); err != nil {
			t.Errorf("certificate %s for %q does not verify against the CA: %v", leaf.Subject.CommonName, c.host, err)
		}
	}
}

// TestExitedChildStaysOursUntilStop: a child that exits on its own is
// reported with its status but stays an unreaped zombie until Stop, so the
// id Stop signals as a process group can belong to no one else.
func TestExitedChildStaysOursUntilStop(t *testing.T) {
	dir := t.TempDir()
	p, err := StartProcess("sh", filepath.Join(dir, "sh.log"), nil, "/bin/sh", "-c", "exit 3")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if done, _ := p.Exited(); done {
			break
		}
	}
	done, err := p.Exited()
	if !done || err == nil || err.Error() != "exit status 3" {
		t.Fatalf("Exited() = %v, %v; want true, exit status 3", done, err)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid()) + "/stat")
	if err != nil {
		t.Fatalf("the exited child was reaped before Stop: %v", err)
	}
	s := string(b)
	if state := strings.Fields(s[strings.LastIndex(s, ")")+1:])[0]; state != "Z" {
		t.Errorf("want the exited child a zombie until Stop, its state is %s", state)
	}
	p.Stop(time.Second)
	waitGone(t, p.Pid())
	p.Stop(time.Second) // a second Stop is harmless
}
