package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/response"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/function"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/runningstate"
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

// fleet plays the API server and the provider for the benchmarks: it
// answers the function's requirements as Crossplane would (an identity
// Lease by name, held by at most one XR; a machine's running-state
// ConfigMap; and every XMachine for a label selector, so that a function
// that asked for the fleet again would show it at N = 1,000), and reports
// what the function composed as the provider would once it is made.
type fleet struct {
	input      []byte
	mu         sync.Mutex
	controller map[string]string // identity object name -> XR uid
	xrs        []map[string]any
}

func newFleet(input []byte) *fleet {
	return &fleet{input: input, controller: map[string]string{}}
}

// hold records that xr holds its identities and exists, as a machine of
// the fleet that has converged.
func (f *fleet) hold(tb testing.TB, xr map[string]any) {
	tb.Helper()
	spec, err := function.SpecOf(xr)
	if err != nil {
		tb.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range compose.Identities(spec) {
		f.controller[id.Name] = uidOf(xr)
	}
	f.xrs = append(f.xrs, xr)
}

func (f *fleet) answer(sel *fnv1.ResourceSelector) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case sel.GetKind() == compose.IdentityKind:
		uid, ok := f.controller[sel.GetMatchName()]
		if !ok {
			return nil
		}
		return []map[string]any{benchLease(sel.GetMatchName(), uid)}
	case sel.GetKind() == "ConfigMap":
		host := strings.TrimPrefix(sel.GetMatchName(), runningstate.Name(""))
		st := runningstate.State{Host: host, Desired: strings.Repeat("ab", 20), Running: strings.Repeat("ab", 20), Verdict: "converged"}
		st.Judge()
		data := map[string]any{}
		for k, v := range st.Data(time.Now()) {
			data[k] = v
		}
		return []map[string]any{{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": sel.GetMatchName(), "namespace": sel.GetNamespace(),
				"labels": map[string]any{runningstate.Label: "true"}, "resourceVersion": "4711", "uid": "cm-" + host},
			"data": data,
		}}
	case sel.GetMatchLabels() != nil:
		return append([]map[string]any(nil), f.xrs...)
	}
	return nil
}

// benchLease is an identity Lease as the API server returns it: controlled
// by the XR with uid, with the metadata Crossplane's apply leaves.
func benchLease(name, uid string) map[string]any {
	return map[string]any{
		"apiVersion": compose.IdentityAPIVersion, "kind": compose.IdentityKind,
		"metadata": map[string]any{
			"name": name, "namespace": compose.IdentityNamespace, "uid": "lease-" + name, "resourceVersion": "1234",
			"creationTimestamp": "2026-12-01T00:00:00Z",
			"annotations":       map[string]any{"crossplane.io/composition-resource-name": name},
			"labels":            map[string]any{"crossplane.io/composite": strings.TrimPrefix(uid, "uid-")},
			"ownerReferences": []any{map[string]any{"apiVersion": "homelab.dev/v1alpha1", "kind": "XMachine",
				"name": strings.TrimPrefix(uid, "uid-"), "uid": uid, "controller": true, "blockOwnerDeletion": true}},
		},
		"spec": map[string]any{"holderIdentity": "Machine team/" + strings.TrimPrefix(uid, "uid-")},
	}
}

func uidOf(xr map[string]any) string {
	uid, _ := xr["metadata"].(map[string]any)["uid"].(string)
	return uid
}

// benchMachine is one machine's XR and what exists of it.
type benchMachine struct {
	xr       map[string]any
	observed map[string]map[string]any
}

// reconcile is one reconcile of m as Crossplane runs it: a call, the
// resources it requires fetched, a second call with them. Then what the
// second call desires is applied: its identities held, the XR's status
// written, every resource made by the provider. It returns both requests
// and the last response.
func (f *fleet) reconcile(ctx context.Context, call func(context.Context, *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error), m *benchMachine) ([2]*fnv1.RunFunctionRequest, *fnv1.RunFunctionResponse, error) {
	var reqs [2]*fnv1.RunFunctionRequest
	req, err := function.NewRequest(m.xr, f.input, m.observed, nil)
	if err != nil {
		return reqs, nil, err
	}
	reqs[0] = req
	rsp, err := call(ctx, req)
	if err != nil {
		return reqs, nil, err
	}
	required := map[string][]map[string]any{}
	for name, sel := range rsp.GetRequirements().GetResources() {
		required[name] = f.answer(sel)
	}
	if reqs[1], err = function.NewRequest(m.xr, f.input, m.observed, required); err != nil {
		return reqs, nil, err
	}
	if rsp, err = call(ctx, reqs[1]); err != nil {
		return reqs, nil, err
	}
	for _, r := range rsp.GetResults() {
		if r.GetSeverity() == fnv1.Severity_SEVERITY_FATAL {
			return reqs, nil, fmt.Errorf("%s: Fatal: %s", m.xr["metadata"].(map[string]any)["name"], r.GetMessage())
		}
	}
	f.mu.Lock()
	for name, r := range rsp.GetDesired().GetResources() {
		if !compose.IsIdentity(name) {
			continue
		}
		n := r.GetResource().GetFields()["metadata"].GetStructValue().GetFields()["name"].GetStringValue()
		if _, taken := f.controller[n]; !taken {
			f.controller[n] = uidOf(m.xr)
		}
	}
	f.mu.Unlock()
	m.observed = provided(rsp)
	m.xr = withStatus(m.xr, rsp)
	return reqs, rsp, nil
}

// provided is what Crossplane observes once the provider has made what rsp
// desires (function.Applied), with a made VM and snippet reported as our
// provider reports them: status.atProvider repeats every argument and adds
// what Proxmox says (the VM's id, node, addresses and interfaces), so the
// function is sent far more than it reads.
func provided(rsp *fnv1.RunFunctionResponse) map[string]map[string]any {
	obs := function.Applied(rsp)
	for _, name := range []string{compose.UserData, compose.VM} {
		o := obs[name]
		if o == nil {
			continue
		}
		spec, _ := o["spec"].(map[string]any)
		fp, _ := spec["forProvider"].(map[string]any)
		at := deepCopy(fp)
		meta, _ := o["metadata"].(map[string]any)
		meta["uid"], meta["resourceVersion"], meta["generation"] = "uid-"+fmt.Sprint(meta["name"]), "98765", 3
		meta["creationTimestamp"], meta["finalizers"] = "2026-12-01T00:00:00Z", []any{"finalizer.managedresource.crossplane.io"}
		spec["initProvider"] = map[string]any{}
		spec["deletionPolicy"] = "Delete"
		status, _ := o["status"].(map[string]any)
		if name == compose.VM {
			if pols, _ := spec["managementPolicies"].([]any); len(pols) == 1 {
				continue // Observe-only: reported absent (function.Applied)
			}
			at["id"] = fmt.Sprint(fp["vmId"])
			at["ipv4Addresses"] = []any{[]any{"127.0.0.1"}, []any{"10.0.10.53"}}
			at["ipv6Addresses"] = []any{[]any{"::1"}, []any{"fe80::be24:11ff:fe3a:1b2c"}}
			at["macAddresses"] = []any{"00:00:00:00:00:00", "BC:24:11:3A:1B:2C"}
			at["networkInterfaceNames"] = []any{"lo", "ens18"}
		} else {
			at["id"] = meta["annotations"].(map[string]any)[compose.AnnotationExternalName]
		}
		status["atProvider"] = at
		for _, c := range status["conditions"].([]any) {
			c.(map[string]any)["lastTransitionTime"] = "2026-12-01T00:05:00Z"
		}
	}
	return obs
}

// withStatus is xr as Crossplane writes it back after a reconcile: the
// status the function desired, its conditions, and the references Crossplane
// keeps in spec and metadata.
func withStatus(xr map[string]any, rsp *fnv1.RunFunctionResponse) map[string]any {
	out := deepCopy(xr)
	st := rsp.GetDesired().GetComposite().GetResource().AsMap()["status"]
	status, _ := st.(map[string]any)
	if status == nil {
		status = map[string]any{}
	}
	var conds []any
	for _, c := range rsp.GetConditions() {
		conds = append(conds, map[string]any{"type": c.GetType(), "status": strings.TrimPrefix(c.GetStatus().String(), "STATUS_CONDITION_"),
			"reason": c.GetReason(), "message": c.GetMessage(), "lastTransitionTime": "2026-12-01T00:05:00Z"})
	}
	status["conditions"] = append(conds,
		map[string]any{"type": "Synced", "status": "True", "reason": "ReconcileSuccess", "lastTransitionTime": "2026-12-01T00:05:00Z"},
		map[string]any{"type": "Ready", "status": "True", "reason": "Available", "lastTransitionTime": "2026-12-01T00:05:00Z"})
	out["status"] = status
	spec := out["spec"].(map[string]any)
	var refs []any
	names := make([]string, 0, len(rsp.GetDesired().GetResources()))
	for n := range rsp.GetDesired().GetResources() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		u := rsp.GetDesired().GetResources()[n].GetResource().AsMap()
		refs = append(refs, map[string]any{"apiVersion": u["apiVersion"], "kind": u["kind"], "name": u["metadata"].(map[string]any)["name"]})
	}
	spec["resourceRefs"] = refs
	spec["compositionRef"] = map[string]any{"name": "xmachines.homelab.dev"}
	spec["compositionRevisionRef"] = map[string]any{"name": "xmachines.homelab.dev-6c4c8f3"}
	spec["compositionUpdatePolicy"] = "Automatic"
	meta := out["metadata"].(map[string]any)
	meta["generation"], meta["resourceVersion"], meta["creationTimestamp"] = 1, "123456", "2026-12-01T00:00:00Z"
	meta["finalizers"] = []any{"composite.apiextensions.crossplane.io"}
	meta["labels"] = map[string]any{"crossplane.io/claim-name": meta["name"], "crossplane.io/claim-namespace": "team", "crossplane.io/composite": meta["name"]}
	return out
}

func deepCopy(m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// benchXR is machine i of a fleet (i < 0: the example claim dns01 itself):
// its own name, VM id, host name and address.
func benchXR(tb testing.TB, i int) map[string]any {
	tb.Helper()
	xr := deepCopy(benchBase(tb))
	name := "dns01"
	spec := xr["spec"].(map[string]any)
	if i >= 0 {
		name = fmt.Sprintf("m%05d", i)
		spec["hostname"] = name
		spec["proxmox"].(map[string]any)["vmId"] = 10000 + i
		spec["network"] = map[string]any{"ip": fmt.Sprintf("10.%d.%d.%d", 100+i/62500, 100+i/250%250, 1+i%250), "cidr": "10.0.0.0/8", "gateway": "10.0.0.1", "dns": []any{"10.0.0.1"}}
		spec["nix"].(map[string]any)["flakeRef"] = "git+https://git.lab.home.arpa/homelab-infra?ref=main#" + name
	}
	spec["claimRef"] = map[string]any{"apiVersion": "homelab.dev/v1alpha1", "kind": "Machine", "namespace": "team", "name": name}
	meta := xr["metadata"].(map[string]any)
	meta["name"], meta["uid"] = name, "uid-"+name
	return xr
}

var (
	benchBaseOnce sync.Once
	benchBaseXR   map[string]any
	benchBaseErr  error
)

// benchBase is the example claim dns01's XR, read once.
func benchBase(tb testing.TB) map[string]any {
	tb.Helper()
	benchBaseOnce.Do(func() {
		claims, err := repo.ReadClaims(filepath.Join(testenv.RepoRoot(tb), repo.ClaimsDir, "dns01.yaml"))
		if err == nil && len(claims) != 1 {
			err = fmt.Errorf("want one claim in dns01.yaml, got %d", len(claims))
		}
		if err != nil {
			benchBaseErr = err
			return
		}
		benchBaseXR = repo.XRFor(claims[0])
	})
	if benchBaseErr != nil {
		tb.Fatal(benchBaseErr)
	}
	return benchBaseXR
}

func benchInput(tb testing.TB) []byte {
	tb.Helper()
	input, err := repo.CompositionInput(filepath.Join(testenv.RepoRoot(tb), repo.CompositionPath))
	if err != nil {
		tb.Fatal(err)
	}
	return input
}

// converge reconciles m until its VM runs (made, Ready, with an address),
// then once more: the requests of that last reconcile are a running
// machine's, the reconcile Crossplane repeats for every machine at every
// poll.
func (f *fleet) converge(tb testing.TB, call func(context.Context, *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error), m *benchMachine) [2]*fnv1.RunFunctionRequest {
	tb.Helper()
	for pass := 0; pass < 8; pass++ {
		reqs, rsp, err := f.reconcile(context.Background(), call, m)
		if err != nil {
			tb.Fatal(err)
		}
		if vm := rsp.GetDesired().GetResources()[compose.VM]; function.Composed(rsp) && vm.GetReady() == fnv1.Ready_READY_TRUE && pass > 0 {
			return reqs
		}
	}
	tb.Fatal("the machine's VM was not running after eight reconciles")
	return [2]*fnv1.RunFunctionRequest{}
}

// BenchmarkReconcileOverGRPC is the function's cost per reconcile (its two
// calls: the first returns what it requires, the second composes) against
// the floor's, a function that does nothing, in a fleet of N other
// machines: the same requests to both servers, one reconcile at a time,
// alternating between them so that the machine's load falls on both alike.
// It reports the median latency of a reconcile and the server's CPU per
// reconcile of each, and their ratios (x-floor). Figures are printed (make
// bench), never asserted: they depend on the machine.
func BenchmarkReconcileOverGRPC(b *testing.B) {
	certs, creds := benchPKI(b)
	fn := startServer(b, "machine", certs, creds)
	fl := startServer(b, "floor", certs, creds)
	input := benchInput(b)
	for _, n := range []int{0, 1000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			f := newFleet(input)
			for i := 0; i < n; i++ {
				f.hold(b, benchXR(b, i))
			}
			m := &benchMachine{xr: benchXR(b, -1)}
			reqs := f.converge(b, fn.call, m)
			ctx := context.Background()
			// One reconcile of each to warm both up.
			for _, s := range []*benchServer{fn, fl} {
				for _, req := range reqs {
					if _, err := s.call(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
			}
			lat := map[*benchServer][]time.Duration{}
			cpu := map[*benchServer]time.Duration{}
			b.ResetTimer()
			for _, s := range []*benchServer{fn, fl} {
				cpu[s] = -s.cpu(b)
			}
			for i := 0; i < b.N; i++ {
				order := []*benchServer{fn, fl}
				if i%2 == 1 {
					order[0], order[1] = fl, fn
				}
				for _, s := range order {
					start := time.Now()
					for _, req := range reqs {
						if _, err := s.call(ctx, req); err != nil {
							b.Fatal(err)
						}
					}
					lat[s] = append(lat[s], time.Since(start))
				}
			}
			for _, s := range []*benchServer{fn, fl} {
				cpu[s] += s.cpu(b)
			}
			b.StopTimer()
			med := func(d []time.Duration) float64 {
				sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
				return float64(d[len(d)/2])
			}
			perRec := func(s *benchServer) float64 { return float64(cpu[s]) / float64(b.N) }
			b.ReportMetric(med(lat[fn])/1e3, "fn-µs/reconcile")
			b.ReportMetric(med(lat[fl])/1e3, "floor-µs/reconcile")
			b.ReportMetric(med(lat[fn])/med(lat[fl]), "latency-x-floor")
			b.ReportMetric(perRec(fn)/1e3, "fn-cpu-µs/reconcile")
			b.ReportMetric(perRec(fl)/1e3, "floor-cpu-µs/reconcile")
			b.ReportMetric(perRec(fn)/perRec(fl), "cpu-x-floor")
			b.ReportMetric(float64(proto.Size(reqs[0])+proto.Size(reqs[1])), "request-bytes/reconcile")
		})
	}
}

// Crossplane's default: --max-reconcile-rate 100, the XR controllers' workers.
const (
	benchClaims      = 200
	benchConcurrency = 100
	// benchPasses is how often each claim is reconciled: until its VM runs
	// (about five), then at polls.
	benchPasses = 7
)

// BenchmarkPeakRSS200Claims is the function's memory under Crossplane's
// load when 200 claims are applied at once: 100 reconciles in flight, each
// its two calls, every claim reconciled until its VM runs and then at
// polls. It reports the peak resident memory of the function's process (a
// fresh one per run; and its peak once started, before the load), its CPU
// per call, and the most calls the client had
// in flight at once; as deployed (bounded: function.InFlight and the
// memory limit at their defaults) and with both bounds off. Figures are
// printed, never asserted.
func BenchmarkPeakRSS200Claims(b *testing.B) {
	certs, creds := benchPKI(b)
	input := benchInput(b)
	machines := make([]*benchMachine, benchClaims)
	for i := range machines {
		machines[i] = &benchMachine{xr: benchXR(b, i)}
	}
	for _, bc := range []struct {
		name  string
		flags []string
	}{
		{"bounded", nil},
		{"unbounded", []string{"--max-concurrent-calls=1000000", "--memory-limit-mib=0"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var peak, start int64
			var calls, most int
			var cpu time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				fn := startServer(b, "machine", certs, creds, bc.flags...)
				f := newFleet(input)
				queue := make(chan *benchMachine, benchClaims)
				passes := map[*benchMachine]int{}
				for _, m := range machines {
					queue <- &benchMachine{xr: m.xr}
				}
				// Wait for the server before the clock starts.
				if _, err := fn.call(context.Background(), &fnv1.RunFunctionRequest{}); err != nil {
					b.Fatal(err)
				}
				cpu0 := fn.cpu(b)
				start = max(start, fn.peakRSS(b))
				var (
					mu       sync.Mutex
					wg       sync.WaitGroup
					left     = benchClaims
					firstErr error
					inFlight int
				)
				call := func(ctx context.Context, req *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error) {
					mu.Lock()
					inFlight++
					most = max(most, inFlight)
					mu.Unlock()
					defer func() {
						mu.Lock()
						inFlight--
						mu.Unlock()
					}()
					return fn.call(ctx, req)
				}
				b.StartTimer()
				done := make(chan struct{})
				for w := 0; w < benchConcurrency; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							var m *benchMachine
							select {
							case m = <-queue:
							case <-done:
								return
							}
							_, _, err := f.reconcile(context.Background(), call, m)
							mu.Lock()
							calls += 2
							passes[m]++
							if err != nil && firstErr == nil {
								firstErr = err
							}
							again := err == nil && passes[m] < benchPasses
							if !again {
								left--
								if left == 0 {
									close(done)
								}
							}
							mu.Unlock()
							if again {
								queue <- m
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				if firstErr != nil {
					b.Fatal(firstErr)
				}
				cpu += fn.cpu(b) - cpu0
				if p := fn.peakRSS(b); p > peak {
					peak = p
				}
				fn.stop()
				b.StartTimer()
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
			b.ReportMetric(float64(start)/(1<<20), "started-RSS-MiB")
			b.ReportMetric(float64(cpu)/float64(calls)/1e3, "fn-cpu-µs/call")
			b.ReportMetric(float64(most), "most-calls-in-flight")
		})
	}
}

// BenchmarkReconcileInProcess is BenchmarkReconcileOverGRPC's reconcile of a
// running machine without gRPC: the function's own CPU and allocations per
// call (each op is one call; the two calls of a reconcile alternate).
func BenchmarkReconcileInProcess(b *testing.B) {
	fn := &function.Function{}
	call := func(ctx context.Context, req *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error) {
		return fn.RunFunction(ctx, req)
	}
	f := newFleet(benchInput(b))
	reqs := f.converge(b, call, &benchMachine{xr: benchXR(b, -1)})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := testenv.CPUTime()
	for i := 0; i < b.N; i++ {
		if _, err := fn.RunFunction(ctx, reqs[i%2]); err != nil {
			b.Fatal(err)
		}
	}
	testenv.ReportCPU(b, cpu)
}
