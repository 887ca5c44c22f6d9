//go:build rollout

// Package rollout is the rollout suite: the driver (internal/rollout, as
// `labctl rollout` runs it) against a fleet of real nix-gitops agents run as
// processes on loopback, each with its own state, profile and stand-in
// toplevel (internal/testflake), following a real git repository served by
// git http-backend, and scraped by a real Prometheus. The only stand-ins are
// the agents' toplevels and their reboot (a script that points the booted
// system at the boot default, as a reboot does): NixOS cannot be built here.
package rollout

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/rollout"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
	"github.com/homelab-infra/homelab-infra/test/harness"
)

// fleet is a repository, N agents and the Prometheus that scrapes them.
type fleet struct {
	t      testing.TB
	dir    string
	repo   *testflake.Repo
	url    string // the repository over HTTP
	bin    string // nix-gitops
	roles  map[string]string
	agents map[string]*harness.Process
	ports  map[string]int
	prom   *harness.Prometheus
	// appErrors is what the canary's application exporter reports.
	appErrors sync.Map
	vmIDs     map[string]int
}

// policy is the rollout policy the fleet's commits carry.
type policy struct {
	Canary, WaveSize, Parallelism int
	Soak                          string
	// StaleAfter and HostBudget are 30s and 5m unless set.
	StaleAfter, HostBudget string
}

func (p policy) yaml() string {
	return fmt.Sprintf(`apiVersion: homelab.dev/v1alpha1
kind: RolloutPolicy
canary: %d
waveSize: %d
parallelism: %d
maxInFlight: 4
soak: %s
hostBudget: %s
staleAfter: %s
gates:
  dns: {roles: [dns], paths: [nix/modules/dns-unbound.nix]}
  reboot: true
`, p.Canary, p.WaveSize, p.Parallelism, p.Soak, cmp.Or(p.HostBudget, "5m"), cmp.Or(p.StaleAfter, "30s"))
}

var defaultPolicy = policy{Canary: 1, WaveSize: 2, Parallelism: 2, Soak: "3s"}

// testKey is the machines' admin key in their claims (no VM is made).
const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAFLJ6VeZ/nBqc9gC5W59y5uJxq2icS504scLzx64ilF ops@workstation"

func buildAgent(t testing.TB, dir string) string {
	bin := filepath.Join(dir, "nix-gitops")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "../../cmd/nix-gitops")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cannot build nix-gitops: %v\n%s", err, out)
	}
	return bin
}

// newFleet makes the repository with a first commit and starts the agents
// (each host name's role is roles[host]) and Prometheus.
func newFleet(t testing.TB, roles map[string]string) *fleet {
	return newFleetOn(t, roles, fleetNet{addr: "127.0.0.1"})
}

// fleetNet is where the fleet's servers listen, and who may push.
type fleetNet struct {
	// addr is the git server's and Prometheus' address: pods reach the
	// stack's ClusterIP.
	addr string
	// pushToken, when set, is the token pushes over HTTP need (as user
	// rollout); the repository then takes only fast-forwards of deploy/*
	// and reboot/* from that user, as a forge's protected refs do.
	pushToken string
	// spare are machines added later (not in roles yet): Prometheus
	// scrapes their ports from the start.
	spare []string
}

func newFleetOn(t testing.TB, roles map[string]string, net fleetNet) *fleet {
	testenv.LookPath(t, "git")
	testenv.LookPath(t, "nix")
	promBin := os.Getenv("PROMETHEUS_BIN")
	if promBin == "" {
		t.Fatal("PROMETHEUS_BIN is not set: run make rollout-e2e, or PROMETHEUS_BIN=$(hack/build-rollout.sh prometheus)")
	}
	dir := t.TempDir()
	if os.Getenv("ROLLOUT_KEEP") != "" {
		dir, _ = os.MkdirTemp("", "rollout-")
		t.Logf("keeping %s", dir)
	}
	repo, err := testflake.New(filepath.Join(dir, "git"), testflake.Options{RecordDir: filepath.Join(dir, "rec"), RecordPerHost: true})
	if err != nil {
		t.Fatal(err)
	}
	if net.pushToken != "" {
		protect(t, repo.Bare)
	}
	srv := httptest.NewUnstartedServer(&testflake.Server{Root: filepath.Dir(repo.Bare), PushToken: net.pushToken})
	l, err := netListen(net.addr)
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	f := &fleet{t: t, dir: dir, repo: repo, url: srv.URL + "/" + filepath.Base(repo.Bare), bin: buildAgent(t, dir),
		roles: roles, agents: map[string]*harness.Process{}, ports: map[string]int{}}
	f.commit(defaultPolicy, nil)

	var targets []string
	for _, h := range append(f.hosts(), net.spare...) {
		port, err := harness.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		f.ports[h] = port
		targets = append(targets, fmt.Sprintf("127.0.0.1:%d", port))
		if !slices.Contains(net.spare, h) {
			f.start(h)
		}
	}
	// The canary's application, as a node's exporter would serve it.
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f.appErrors.Range(func(k, v any) bool {
			fmt.Fprintf(w, "app_errors{host=%q} %d\n", k, v)
			return true
		})
	}))
	t.Cleanup(app.Close)
	targets = append(targets, strings.TrimPrefix(app.URL, "http://"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f.prom, err = harness.StartPrometheus(ctx, harness.PrometheusConfig{Bin: promBin, Dir: filepath.Join(dir, "prometheus"), Targets: targets, Listen: net.addr,
		Rules: "groups:\n  - name: apps\n    rules:\n      - alert: AppErrors\n        expr: app_errors > 0\n"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.prom.Proc.Stop(5 * time.Second) })
	t.Cleanup(func() {
		if t.Failed() {
			for h, a := range f.agents {
				t.Logf("agent %s:\n%s", h, a.Tail(30))
			}
		}
	})
	return f
}

// vmID is host's VM id in its claim: fixed once given (the XRD refuses an
// edit of it).
func (f *fleet) vmID(h string) int {
	if f.vmIDs == nil {
		f.vmIDs = map[string]int{}
	}
	if _, ok := f.vmIDs[h]; !ok {
		f.vmIDs[h] = 2001 + len(f.vmIDs)
	}
	return f.vmIDs[h]
}

func netListen(addr string) (net.Listener, error) { return net.Listen("tcp", addr+":0") }

// protect makes the bare repository take, from the rollout's user, only
// fast-forwards of deploy/* and reboot/* (an update hook, and git's own
// refusal of non-fast-forwards and deletions): what a forge's protected
// branches and a token limited to those refs enforce.
func protect(t testing.TB, bare string) {
	t.Helper()
	for _, kv := range [][2]string{{"receive.denyNonFastForwards", "true"}, {"receive.denyDeletes", "true"}} {
		if _, err := testflake.Git(bare, nil, "config", kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	hook := "#!/bin/sh\n# $1 the ref; pushes of the tests' own commits come without a user.\n" +
		"[ -z \"$REMOTE_USER\" ] && exit 0\n" +
		"case \"$1\" in refs/heads/deploy/*|refs/heads/reboot/*) exit 0 ;; esac\n" +
		"echo \"$REMOTE_USER may move deploy/* and reboot/* only, not $1\" >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bare, "hooks", "update"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (f *fleet) hosts() []string {
	var hs []string
	for h := range f.roles {
		hs = append(hs, h)
	}
	slices.Sort(hs)
	return hs
}

// commit commits every host's system (default: version "v<n>") with the
// policy and a claim per host, and returns the commit.
func (f *fleet) commit(p policy, systems map[string]testflake.System) string {
	f.t.Helper()
	spec := testflake.Spec{Hosts: map[string]testflake.System{}}
	n := len(f.log()) + 1
	claims := filepath.Join(f.repo.Work, "crossplane", "claims")
	for _, d := range []string{claims, filepath.Join(f.repo.Work, "workflows")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			f.t.Fatal(err)
		}
	}
	for _, h := range f.hosts() {
		s, ok := systems[h]
		if !ok {
			s = testflake.System{Version: fmt.Sprintf("v%d", n)}
		}
		if s.Kernel == "" {
			s.Kernel = "k1"
		}
		spec.Hosts[h] = s
		// A whole claim: the Argo suite applies them to its cluster.
		claim := fmt.Sprintf(`apiVersion: homelab.dev/v1alpha1
kind: Machine
metadata: {name: %s, namespace: infra-machines}
spec:
  class: small
  hostname: %s
  role: %s
  network: {dhcp: true}
  proxmox: {vmId: %d}
  image: nixos-26.05
  nix: {flakeRef: %q}
  bootstrap: {adminUser: ops, sshAuthorizedKeys: [%q]}
`, h, h, f.roles[h], f.vmID(h), f.repo.FlakeRef(f.url, h), testKey)
		if err := os.WriteFile(filepath.Join(claims, h+".yaml"), []byte(claim), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(f.repo.Work, rollout.PolicyPath), []byte(p.yaml()), 0o644); err != nil {
		f.t.Fatal(err)
	}
	sha, err := f.repo.Commit(spec, testflake.CommitOptions{Message: fmt.Sprintf("commit %d", n)})
	if err != nil {
		f.t.Fatal(err)
	}
	return sha
}

func (f *fleet) log() []string {
	out, err := testflake.Git(f.repo.Work, nil, "log", "--format=%H")
	if err != nil {
		return nil
	}
	return strings.Fields(out)
}

// start starts host's agent daemon (again).
func (f *fleet) start(h string) {
	f.t.Helper()
	d := filepath.Join(f.dir, "agents", h)
	rec := filepath.Join(f.dir, "rec", h)
	for _, p := range []string{d, rec} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			f.t.Fatal(err)
		}
	}
	// The stand-in reboot: the boot default becomes the booted and running
	// system, as a reboot into it does; it notes whether other machines'
	// reboot refs existed then (reboots go one at a time).
	reboot := filepath.Join(d, "reboot.sh")
	script := fmt.Sprintf("#!/bin/sh\nset -e\necho \"$(git ls-remote %s 'refs/heads/reboot/*' | wc -l)\" >>%s/reboots\nln -sfn \"$(cat %s/boot)\" %s/booted-system\nln -sfn \"$(cat %s/boot)\" %s/current-system\n",
		f.repo.Bare, d, rec, d, rec, rec)
	if err := os.WriteFile(reboot, []byte(script), 0o755); err != nil {
		f.t.Fatal(err)
	}
	// Unhealthy when the running version says so.
	health := filepath.Join(d, "health.sh")
	if err := os.WriteFile(health, []byte("#!/bin/sh\ncase $(cat "+rec+"/current-system/version) in *bad*) echo broken >&2; exit 1 ;; esac\n"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	cfg := map[string]any{
		"flake": f.repo.FlakeRef(f.url, h), "stateDir": filepath.Join(d, "state"), "profile": filepath.Join(d, "profiles", "system"),
		"bootedSystem": filepath.Join(d, "booted-system"), "currentSystem": filepath.Join(rec, "current-system"),
		"onKernelChange": "boot", "rollout": map[string]any{"enable": true},
		"reboot":  map[string]any{"allow": "approved", "command": []string{reboot}},
		"poll":    map[string]any{"interval": "1s", "jitter": "0s"},
		"retry":   map[string]any{"attempts": 2, "initial": "100ms", "max": "200ms"},
		"health":  map[string]any{"settle": "1s", "script": health},
		"metrics": map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", f.ports[h])},
	}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(d, "config.json"), b, 0o644); err != nil {
		f.t.Fatal(err)
	}
	env := append(os.Environ(), "NIX_CONFIG="+testflake.NixConf)
	p, err := harness.StartProcess("nix-gitops-"+h, filepath.Join(d, "agent.log"), env, f.bin, "run", "--config", filepath.Join(d, "config.json"))
	if err != nil {
		f.t.Fatal(err)
	}
	f.agents[h] = p
	f.t.Cleanup(func() { p.Stop(10 * time.Second) })
}

// stop stops host's agent: the machine keeps running, but reports nothing.
func (f *fleet) stop(h string) { f.agents[h].Stop(10 * time.Second) }

// ref is the remote's deploy/<host> or reboot/<host> ("" when missing).
func (f *fleet) ref(kind, h string) string {
	out, _ := testflake.Git(f.repo.Bare, nil, "rev-parse", "--verify", "--quiet", "refs/heads/"+kind+"/"+h)
	return out
}

// refs are the remote's deploy/* and reboot/* refs.
func (f *fleet) refs() map[string]string {
	f.t.Helper()
	out, err := testflake.Git(f.repo.Bare, nil, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads/deploy", "refs/heads/reboot")
	if err != nil {
		f.t.Fatal(err)
	}
	refs := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, " "); ok {
			refs[k] = v
		}
	}
	return refs
}

// running is the version host runs.
func (f *fleet) running(h string) string {
	b, _ := os.ReadFile(filepath.Join(f.dir, "rec", h, "current-system", "version"))
	return strings.TrimSpace(string(b))
}

// reboots lists, per reboot of host, how many reboot refs existed then.
func (f *fleet) reboots(h string) []string {
	b, _ := os.ReadFile(filepath.Join(f.dir, "agents", h, "reboots"))
	return strings.Fields(string(b))
}

// driver is the rollout driver as labctl runs it, with its own clone.
func (f *fleet) driver(approve ...string) (*rollout.Driver, *rollout.Prometheus) {
	f.t.Helper()
	clone := filepath.Join(f.dir, "driver.git")
	if _, err := os.Stat(clone); err != nil {
		if _, err := testflake.Git(f.dir, nil, "init", "-q", "--bare", clone); err != nil {
			f.t.Fatal(err)
		}
	}
	prom, err := rollout.NewPrometheus(f.prom.URL)
	if err != nil {
		f.t.Fatal(err)
	}
	d := &rollout.Driver{Git: &rollout.Git{Dir: clone, Remote: f.repo.Bare}, Verdicts: prom, Poll: 500 * time.Millisecond,
		Approved: map[string]bool{}}
	for _, a := range approve {
		d.Approved[a] = true
	}
	return d, prom
}

// plan plans a rollout of target to the selected machines.
func (f *fleet) plan(d *rollout.Driver, target string, sel rollout.Selector) rollout.Plan {
	f.t.Helper()
	in, err := rollout.Load(context.Background(), d.Git, target, sel, "")
	if err != nil {
		f.t.Fatal(err)
	}
	p, err := rollout.MakePlan(in)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

// run plans and carries out a rollout.
func (f *fleet) run(target string, sel rollout.Selector, approve ...string) rollout.Report {
	f.t.Helper()
	d, prom := f.driver(approve...)
	p := f.plan(d, target, sel)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r := d.Run(ctx, p)
	var b strings.Builder
	_ = rollout.PrintReport(&b, r)
	f.t.Logf("rollout (%d Prometheus queries):\n%s", prom.Queries.Load(), b.String())
	return r
}

// verdicts reads every host's verdict (commit and state) from Prometheus.
func (f *fleet) verdicts() map[string]rollout.Verdict {
	f.t.Helper()
	_, prom := f.driver()
	got, err := prom.Verdicts(context.Background(), f.hosts())
	if err != nil {
		f.t.Fatalf("cannot read the verdicts: %v", err)
	}
	out := map[string]rollout.Verdict{}
	for h, v := range got {
		out[h] = rollout.Verdict{Commit: v.Commit, State: v.State}
	}
	return out
}

// waitVerdicts waits until Prometheus has each host's verdict as wanted.
func (f *fleet) waitVerdicts(want map[string]rollout.Verdict) {
	f.t.Helper()
	_, prom := f.driver()
	deadline := time.Now().Add(5 * time.Minute)
	var hosts []string
	for h := range want {
		hosts = append(hosts, h)
	}
	for {
		got, err := prom.Verdicts(context.Background(), hosts)
		ok := err == nil
		for h, w := range want {
			if g := got[h]; g.Commit != w.Commit || g.State != w.State {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("verdicts in Prometheus: got %+v (%v), want %+v", got, err, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
