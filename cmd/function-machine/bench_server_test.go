package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/response"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// The benchmarks run the function as Crossplane does: a server process of
// its own, called over gRPC with mTLS on loopback. The server processes are
// this test binary started again with benchServeEnv set (TestMain): one
// serves the function through cli.Run, as main does; the other serves the
// floor, a function that does nothing, through the same cli.serve, so the
// two differ by the function alone.
const (
	benchServeEnv = "FUNCTION_MACHINE_BENCH_SERVE" // "machine" or "floor"
	benchAddrEnv  = "FUNCTION_MACHINE_BENCH_ADDRESS"
	benchCertsEnv = "FUNCTION_MACHINE_BENCH_CERTS"
	benchFlagsEnv = "FUNCTION_MACHINE_BENCH_FLAGS" // more flags
)

func TestMain(m *testing.M) {
	if role := os.Getenv(benchServeEnv); role != "" {
		os.Exit(benchServe(role))
	}
	os.Exit(m.Run())
}

// floor is the least a composition function does: it returns the desired
// state it was given (response.To), as every function must.
type floor struct {
	fnv1.UnimplementedFunctionRunnerServiceServer
}

func (floor) RunFunction(_ context.Context, req *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error) {
	return response.To(req, response.DefaultTTL), nil
}

// benchServe is the server process. On SIGUSR1 it prints the CPU time it
// has used ("cpu <ns>"): getrusage counts every thread, exited ones too, to
// the microsecond, where /proc's counters tick in 10 ms.
func benchServe(role string) int {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			fmt.Printf("cpu %d\n", int64(testenv.CPUTime()))
		}
	}()
	// As deployed: the command's flags and their defaults, mTLS, and the
	// metrics endpoint on (its interceptor runs on every call), on a port
	// of its own.
	c := &cli{}
	parser, err := kong.New(c)
	if err == nil {
		_, err = parser.Parse(append([]string{"--network=tcp", "--address=" + os.Getenv(benchAddrEnv),
			"--tls-server-certs-dir=" + os.Getenv(benchCertsEnv), "--metrics-address=127.0.0.1:0"},
			strings.Fields(os.Getenv(benchFlagsEnv))...))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	switch role {
	case "machine":
		err = c.Run()
	case "floor":
		err = c.serve(floor{})
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// benchServer is a server process and a client connection to it.
type benchServer struct {
	cmd    *exec.Cmd
	out    *bufio.Reader
	conn   *grpc.ClientConn
	client fnv1.FunctionRunnerServiceClient
	stderr *strings.Builder
}

func startServer(tb testing.TB, role, certs string, creds credentials.TransportCredentials, flags ...string) *benchServer {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	s := &benchServer{cmd: exec.Command(os.Args[0]), stderr: &strings.Builder{}}
	s.cmd.Env = append(os.Environ(), benchServeEnv+"="+role, benchAddrEnv+"="+addr, benchCertsEnv+"="+certs, benchFlagsEnv+"="+strings.Join(flags, " "))
	s.cmd.Stderr = s.stderr
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	s.out = bufio.NewReader(stdout)
	if err := s.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	})
	if s.conn, err = grpc.NewClient(addr, grpc.WithTransportCredentials(creds)); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.conn.Close() })
	s.client = fnv1.NewFunctionRunnerServiceClient(s.conn)
	return s
}

// stop ends the server process.
func (s *benchServer) stop() {
	_ = s.conn.Close()
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// call runs the function once; the first call waits for the server to
// listen.
func (s *benchServer) call(ctx context.Context, req *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return s.client.RunFunction(ctx, req, grpc.WaitForReady(true))
}

// cpu is the CPU time the server process has used so far.
func (s *benchServer) cpu(tb testing.TB) time.Duration {
	tb.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		tb.Fatal(err)
	}
	for {
		line, err := s.out.ReadString('\n')
		if err != nil {
			tb.Fatalf("no CPU time from the server: %v\n%s", err, s.stderr)
		}
		if ns, ok := strings.CutPrefix(strings.TrimSpace(line), "cpu "); ok {
			n, err := strconv.ParseInt(ns, 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return time.Duration(n)
		}
	}
}

// peakRSS is the server process's peak resident set size in bytes
// (VmHWM): what the kernel had to give it, the figure a memory limit on its
// container is held against.
func (s *benchServer) peakRSS(tb testing.TB) int64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb * 1024
		}
	}
	tb.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

// benchPKI writes a CA, the server's certificate (tls.crt, tls.key,
// ca.crt, as Crossplane mounts them) into a folder and returns it with the
// client's credentials, as Crossplane's.
func benchPKI(tb testing.TB) (string, credentials.TransportCredentials) {
	tb.Helper()
	dir := tb.TempDir()
	// cert (main_test.go) issues each, as the server tests' PKI does.
	issue := func(tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		return cert(tb, parent, parentKey, tmpl)
	}
	keyPEM := func(k *ecdsa.PrivateKey) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: mustEC(tb, k)})
	}
	certPEM := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }
	ca, caKey, caDER := issue(&x509.Certificate{Subject: pkix.Name{CommonName: "bench-ca"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	_, srvKey, srvDER := issue(&x509.Certificate{Subject: pkix.Name{CommonName: "function-machine"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, caKey)
	_, cliKey, cliDER := issue(&x509.Certificate{Subject: pkix.Name{CommonName: "crossplane"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, caKey)
	for name, b := range map[string][]byte{"ca.crt": certPEM(caDER), "tls.crt": certPEM(srvDER), "tls.key": keyPEM(srvKey)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	client, err := tls.X509KeyPair(certPEM(cliDER), keyPEM(cliKey))
	if err != nil {
		tb.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return dir, credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{client}, RootCAs: roots, MinVersion: tls.VersionTLS12})
}
