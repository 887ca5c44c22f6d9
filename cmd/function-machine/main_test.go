package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/function"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// pki is a throwaway CA with a server and a client certificate, as
// Crossplane's crossplane-root-ca, function server and client certificates.
type pki struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	client tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	var caDER []byte
	p.ca, p.caKey, caDER = cert(t, nil, nil, &x509.Certificate{
		Subject: pkix.Name{CommonName: "test-ca"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	})
	_, srvKey, srvDER := cert(t, p.ca, p.caKey, &x509.Certificate{
		Subject: pkix.Name{CommonName: "function-machine"}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	_, cliKey, cliDER := cert(t, p.ca, p.caKey, &x509.Certificate{
		Subject: pkix.Name{CommonName: "crossplane"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	writePEM(t, filepath.Join(p.dir, "ca.crt"), "CERTIFICATE", caDER)
	writePEM(t, filepath.Join(p.dir, "tls.crt"), "CERTIFICATE", srvDER)
	writePEM(t, filepath.Join(p.dir, "tls.key"), "EC PRIVATE KEY", mustEC(t, srvKey))
	var err error
	p.client, err = tls.X509KeyPair(
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cliDER}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: mustEC(t, cliKey)}))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func cert(t testing.TB, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key, der
}

func mustEC(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	b, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// serve starts the command's server on a unix socket (no port to collide
// on). Serve has no stop: the goroutine ends with the test binary.
func serve(t *testing.T, c *cli) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "fn.sock")
	c.Network, c.Address, c.MaxRecvMessageSize = "unix", sock, 4
	go func() {
		if err := c.Run(); err != nil {
			t.Errorf("function-machine stopped: %v", err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return "unix://" + sock
		}
		if time.Now().After(deadline) {
			t.Fatal("function-machine did not listen within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func request(t *testing.T) *fnv1.RunFunctionRequest {
	t.Helper()
	root := testenv.RepoRoot(t)
	input, err := repo.CompositionInput(filepath.Join(root, repo.CompositionPath))
	if err != nil {
		t.Fatal(err)
	}
	claims, err := repo.ReadClaims(filepath.Join(root, repo.ClaimsDir, "dns01.yaml"))
	if err != nil || len(claims) != 1 {
		t.Fatalf("want the dns01 claim: %v", err)
	}
	req, err := function.NewRequest(repo.XRFor(claims[0]), input, nil, function.Offline())
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func call(t *testing.T, target string, creds credentials.TransportCredentials) (*fnv1.RunFunctionResponse, error) {
	t.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return fnv1.NewFunctionRunnerServiceClient(conn).RunFunction(ctx, request(t))
}

// TestServeMTLS serves the function as Crossplane runs it: with the
// certificates in --tls-server-certs-dir, answering only clients whose
// certificate the CA signed.
func TestServeMTLS(t *testing.T) {
	p := newPKI(t)
	target := serve(t, &cli{TLSCertsDir: p.dir})
	roots := x509.NewCertPool()
	roots.AddCert(p.ca)

	rsp, err := call(t, target, credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{p.client}, RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12,
	}))
	if err != nil {
		t.Fatalf("RunFunction over mTLS: %v", err)
	}
	// The first reconcile holds the machine's identities; the snippet and
	// the VM follow once it does.
	if rsp.GetDesired().GetResources()["machine-vmid-1053"] == nil {
		t.Errorf("want the VM id's identity composed over gRPC, got %v", rsp.GetDesired().GetResources())
	}

	if _, err := call(t, target, credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12})); err == nil {
		t.Errorf("a client without a certificate was served; mTLS must refuse it")
	}
	if _, err := call(t, target, insecure.NewCredentials()); err == nil {
		t.Errorf("a plaintext client was served by the mTLS server")
	}
}

// TestServeInsecure is the development mode `crossplane render` uses.
func TestServeInsecure(t *testing.T) {
	target := serve(t, &cli{Insecure: true})
	rsp, err := call(t, target, insecure.NewCredentials())
	if err != nil {
		t.Fatalf("RunFunction with --insecure: %v", err)
	}
	if rsp.GetDesired().GetResources()["machine-vmid-1053"] == nil {
		t.Errorf("want the VM id's identity composed, got %v", rsp.GetDesired().GetResources())
	}
}

// TestNoCredentials: without certificates or --insecure the server refuses
// to start rather than serve in plaintext.
func TestNoCredentials(t *testing.T) {
	c := &cli{Network: "unix", Address: filepath.Join(t.TempDir(), "fn.sock"), MaxRecvMessageSize: 4}
	if err := c.Run(); err == nil {
		t.Fatal("started without credentials")
	}
}
