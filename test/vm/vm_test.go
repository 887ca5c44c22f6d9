//go:build vm

package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"sigs.k8s.io/yaml"

	"github.com/homelab-infra/homelab-infra/internal/agent/state"
	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/labctl"
	"github.com/homelab-infra/homelab-infra/internal/nocloud"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

const (
	// The MAC Proxmox would have given net0 (its OUI, bc:24:11).
	guestMAC = "bc:24:11:00:10:53"
	// Where the stand-in switch-to-configuration records its calls, in the guest.
	guestRecordDir = "/var/lib/testflake"
	// The textfile the stand-in template's agent config names (the NixOS
	// monitoring module's default).
	guestTextfile = "/var/lib/prometheus-node-exporter/textfile/nix-gitops.prom"
	// A boot (TCG) plus an apply; generous, as CI shares two cores.
	bootLimit = 12 * time.Minute
	// How long the probe waits for the apply inside one boot.
	applyLimit = 8 * time.Minute
)

// TestClaimBootsAndConverges follows the example claim dns01 from its YAML
// to a guest that converges itself from Git, three boots of the same disk:
//
//  1. first boot: cloud-init creates the admin user, sets the host name,
//     writes /etc/nix-flake-target and starts nix-gitops-apply.service,
//     which converges to the served commit and then disables itself;
//  2. a new commit, the timer enabled for that boot: converges to it;
//  3. a commit whose health gate fails: ends on the previous generation.
//
// Fakes (named): the guest is a Debian stand-in for the NixOS template
// (hack/vm-image.sh), the flake is internal/testflake's stand-in toplevel,
// and Proxmox is replaced by internal/nocloud writing its cloud-init drive.
func TestClaimBootsAndConverges(t *testing.T) {
	testenv.Real(t)
	for _, p := range []string{"qemu-system-x86_64", "qemu-img", "socat", "debootstrap", "mkfs.ext4", "git", "go"} {
		testenv.LookPath(t, p)
	}
	if os.Geteuid() != 0 {
		t.Fatal("the VM suite builds its guest image with debootstrap and must run as root (CI does)")
	}
	root := testenv.RepoRoot(t)
	dir := workDir(t)
	mountsBefore := readMounts(t)

	agent, err := buildAgent(root, dir)
	if err != nil {
		t.Fatal(err)
	}
	img, took, err := buildImage(root, agent, filepath.Join(dir, "image.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stand-in template image ready in %s: %s", took.Round(time.Second), img.disk)

	// The claim, rewritten to the guest's network: QEMU user networking's
	// subnet, and the git server as the guest sees it.
	claim := readClaim(t, filepath.Join(root, repo.ClaimsDir, "dns01.yaml"))
	spec := claim.Object["spec"].(map[string]any)
	spec["network"] = map[string]any{"ip": guestIP, "cidr": guestCIDR, "gateway": guestGateway, "dns": []any{guestDNS}}
	nixSpec := spec["nix"].(map[string]any)
	flakeRef, repoPath := guestFlakeRef(t, nixSpec["flakeRef"].(string))
	nixSpec["flakeRef"] = flakeRef

	// Its resources, exactly as labctl render makes them.
	userData, initialization := render(t, root, dir, claim)
	ifaces, dns, err := nocloud.FromInitialization(initialization, []string{guestMAC})
	if err != nil {
		t.Fatal(err)
	}
	networkConfig, err := nocloud.NetworkConfig(ifaces, dns)
	if err != nil {
		t.Fatal(err)
	}
	seedPath := filepath.Join(dir, "seed.iso")
	writeSeed(t, seedPath, nocloud.Seed{
		UserData:      userData,
		MetaData:      nocloud.MetaData(userData, networkConfig),
		NetworkConfig: networkConfig,
	})

	// The flake repo, served over smart HTTP on host loopback at the
	// claim's path. testflake.New also makes RecordDir here on the host,
	// where nothing records into it: remove it again unless it was there.
	if _, err := os.Stat(guestRecordDir); os.IsNotExist(err) {
		t.Cleanup(func() { _ = os.Remove(guestRecordDir) })
	}
	flake, err := testflake.New(filepath.Join(dir, "flake"), testflake.Options{RecordDir: guestRecordDir})
	if err != nil {
		t.Fatal(err)
	}
	serveRoot := filepath.Join(dir, "srv")
	if err := os.MkdirAll(filepath.Dir(filepath.Join(serveRoot, repoPath)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(flake.Bare, filepath.Join(serveRoot, repoPath)); err != nil {
		t.Fatal(err)
	}
	git, err := startGitServer(serveRoot)
	if err != nil {
		t.Fatal(err)
	}
	deny, err := startDenyListener()
	if err != nil {
		t.Fatal(err)
	}
	hostIP, err := hostAddress()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Nothing may stay behind: ports, processes (checked per boot), mounts.
		if err := git.close(); err != nil {
			t.Errorf("cannot stop the git server: %v", err)
		}
		if err := deny.close(); err != nil {
			t.Errorf("cannot stop the isolation listener: %v", err)
		}
		for _, p := range []int{git.port, deny.port} {
			if !portClosed(p) {
				t.Errorf("port %d still accepts connections after the test", p)
			}
		}
		if diff := cmp.Diff(mountsBefore, readMounts(t)); diff != "" {
			t.Errorf("the mount table changed during the test (-before, +after):\n%s", diff)
		}
	}()

	g, err := newGuest(dir, img, seedPath, guestMAC, map[string]int{fmt.Sprintf("%s:%d", gitAddr, gitPort): git.port})
	if err != nil {
		t.Fatal(err)
	}
	params := probeParams{
		admin:     spec["bootstrap"].(map[string]any)["adminUser"].(string),
		waitLimit: int(applyLimit / time.Second),
		allow:     []string{fmt.Sprintf("%s:%d", gitAddr, gitPort)},
		deny: []string{
			fmt.Sprintf("%s:%d", guestGateway, deny.port), // slirp's alias for host loopback
			fmt.Sprintf("%s:%d", hostIP, deny.port),       // the host's own address
			fmt.Sprintf("%s:22", gitAddr),                 // a port not forwarded
			fmt.Sprintf("%s:53", guestDNS),                // slirp's DNS forwarder
		},
		textfile: guestTextfile,
	}
	wantKeys := toStrings(spec["bootstrap"].(map[string]any)["sshAuthorizedKeys"])
	hostname := spec["hostname"].(string)

	// Boot 1: first boot from the template.
	commitA := commit(t, flake, hostname, testflake.System{Version: "a", Kernel: "k1", Initrd: "i1"})
	params.wait = "service"
	r1, ok := bootAndReport(t, g, bootOptions{name: "boot1", timeout: bootLimit}, params)
	if !ok {
		return
	}
	checkBoot(t, "boot1", r1, func(t *testing.T, r report) {
		checkFirstBoot(t, r, hostname, hostname+"."+spec["domain"].(string), flakeRef, wantKeys)
		checkNetwork(t, r)
		checkIsolation(t, r, params, deny)
		st := checkApply(t, r, 1, commitA, "applied")
		if st != nil && !st.FirstBootDone {
			t.Errorf("state.json: firstBootDone is false after a successful first boot; the unit would not disable itself")
		}
	})

	// Boot 2: a new commit. The boot-time start does nothing (the first boot
	// is done: the unit disabled itself); the timer, enabled for this boot
	// only, applies the commit. Were the boot-time start still live, it would
	// apply the commit and the timer's run would find it up to date.
	commitB := commit(t, flake, hostname, testflake.System{Version: "b", Kernel: "k1", Initrd: "i1"})
	params.wait = "timer"
	r2, ok := bootAndReport(t, g, timerBoot("boot2"), params)
	if !ok {
		return
	}
	checkBoot(t, "boot2", r2, func(t *testing.T, r report) {
		checkApply(t, r, 2, commitB, "applied")
		if v := r.property("apply-timer", "LastTriggerUSecMonotonic"); v == "" || v == "0" {
			t.Errorf("nix-gitops-apply.timer never fired in boot 2 (LastTriggerUSecMonotonic=%q): the run was not the timer's", v)
		}
		checkIsolation(t, r, params, deny)
	})

	// Boot 3: a commit whose health gate fails ends on the previous generation.
	commitC := commit(t, flake, hostname, testflake.System{Version: "c", Kernel: "k1", Initrd: "i1", Degrade: true})
	r3, ok := bootAndReport(t, g, timerBoot("boot3"), params)
	if !ok {
		return
	}
	checkBoot(t, "boot3", r3, func(t *testing.T, r report) {
		st := checkApply(t, r, 2, commitC, "rolled-back")
		if st == nil {
			return
		}
		if st.Applied == nil || st.Applied.Commit != commitB {
			t.Errorf("state.json: applied %+v after the failed health gate, want commit %s (boot 2's)", st.Applied, commitB)
		}
		if b, ok := st.IsBad(commitC); !ok || b.Stage != state.StageHealth {
			t.Errorf("state.json: want commit %s remembered as bad at stage %s, got %+v (found %v)", commitC, state.StageHealth, b, ok)
		}
	})
}

// timerBoot is a boot in which the probe, once the boot-time start is done,
// starts the opt-in nix-gitops-apply.timer for that boot only. What this
// proves is that a start by the timer applies; the schedule itself (2 min
// after boot, then daily, with jitter) is internal/agent/units' to test. So a
// per-boot drop-in, handed over as a credential, replaces the schedule with
// "1 s after the timer starts" and keeps the guest from idling until 2 min of
// uptime plus up to 5 min of jitter.
func timerBoot(name string) bootOptions {
	return bootOptions{
		name:    name,
		timeout: bootLimit,
		creds: map[string][]byte{
			// An empty OnBootSec= resets every monotonic trigger of the unit.
			"systemd.unit-dropin.nix-gitops-apply.timer": []byte("[Timer]\nOnBootSec=\nOnActiveSec=1s\nRandomizedDelaySec=0\nAccuracySec=1s\n"),
		},
	}
}

// bootAndReport boots the guest with the probe and returns its report. A boot
// that produced no complete report fails the test with the console attached.
func bootAndReport(t *testing.T, g *guest, o bootOptions, p probeParams) (report, bool) {
	t.Helper()
	if o.creds == nil {
		o.creds = map[string][]byte{}
	}
	// The stand-in switch-to-configuration records into guestRecordDir; the
	// guest makes that folder at boot (systemd-tmpfiles reads this credential).
	o.creds["tmpfiles.extra"] = []byte("d " + guestRecordDir + " 0755 root root -\n")
	o.creds["systemd.extra-unit."+reportUnit] = []byte(reportUnitText(p))
	o.creds[probeCred] = probeScript
	o.cmdline = append(o.cmdline, "systemd.wants="+reportUnit)
	res := g.boot(o)
	t.Logf("%s: %s", o.name, res.took.Round(time.Second))
	if left := waitGroupEmpty(res.pgid); len(left) > 0 {
		t.Errorf("%s: processes left behind by QEMU: %v", o.name, left)
	}
	r, err := parseReport(res.report)
	if res.err != nil || err != nil {
		t.Errorf("%s: %v; %v", o.name, res.err, err)
		t.Logf("%s: probe report:\n%s", o.name, res.report)
		t.Logf("%s: guest console:\n%s", o.name, res.console)
		return nil, false
	}
	r["console"] = res.console
	return r, true
}

// checkBoot runs one boot's assertions; if any fails, the guest's console
// and the probe's report are attached.
func checkBoot(t *testing.T, name string, r report, check func(*testing.T, report)) {
	t.Helper()
	if !t.Run(name, func(t *testing.T) { check(t, r) }) {
		var b strings.Builder
		for k, v := range r {
			if k != "console" {
				fmt.Fprintf(&b, "=== %s\n%s\n", k, v)
			}
		}
		t.Logf("%s: probe report:\n%s", name, b.String())
		t.Logf("%s: guest console:\n%s", name, r["console"])
	}
}

func checkFirstBoot(t *testing.T, r report, hostname, fqdn, flakeRef string, keys []string) {
	t.Helper()
	if got := r["hostname"]; got != hostname {
		t.Errorf("hostname: want %q (the claim's), got %q", hostname, got)
	}
	if got := r["fqdn"]; got != fqdn {
		t.Errorf("hostname --fqdn: want %q, got %q", fqdn, got)
	}
	if got := r["flake-target"]; got != flakeRef {
		t.Errorf("/etc/nix-flake-target: want %q (the claim's flake ref), got %q", flakeRef, got)
	}
	if r["passwd"] == "" {
		t.Errorf("the admin user does not exist (getent passwd printed nothing)")
	}
	if f := strings.Fields(r["password-status"]); len(f) < 2 || f[1] != "L" {
		t.Errorf("passwd -S: want the admin's password locked (L), got %q", r["password-status"])
	}
	if diff := cmp.Diff(keys, r.lines("authorized-keys")); diff != "" {
		t.Errorf("the admin's authorized_keys must be exactly the claim's keys: -want, +got:\n%s", diff)
	}
	if !strings.Contains(r["sudo"], "NOPASSWD: ALL") {
		t.Errorf("sudo -l: want the admin allowed everything without a password, got %q", r["sudo"])
	}
	var ci struct {
		Status string   `json:"status"`
		Errors []string `json:"errors"`
	}
	if err := json.Unmarshal([]byte(r["cloud-init"]), &ci); err != nil {
		t.Errorf("cannot read cloud-init status --format json: %v: %q", err, r["cloud-init"])
	} else if ci.Status != "done" || len(ci.Errors) > 0 {
		t.Errorf("cloud-init: want status done without errors, got %q with errors %q", ci.Status, ci.Errors)
	}
	if f := r.lines("failed-units"); len(f) > 0 {
		t.Errorf("failed units after boot (the health gate would see a degraded system): %q", f)
	}
}

// checkNetwork: the static network-config took effect and cloud-init's own
// converter and schema accept it.
func checkNetwork(t *testing.T, r report) {
	t.Helper()
	if !strings.Contains(r["addresses"], guestIP+"/24") || !strings.Contains(r["addresses"], "eth0") {
		t.Errorf("addresses: want %s/24 on eth0 (named by the network-config), got %q", guestIP, r["addresses"])
	}
	if !strings.Contains(r["routes"], "default via "+guestGateway) {
		t.Errorf("routes: want default via %s, got %q", guestGateway, r["routes"])
	}
	nc := r["net-convert"]
	for _, want := range []string{"net-convert exit=0", "schema exit=0", "Address=" + guestIP + "/24", "Gateway=" + guestGateway} {
		if !strings.Contains(nc, want) {
			t.Errorf("cloud-init devel net-convert / schema on the seed's network-config: want %q in:\n%s", want, nc)
		}
	}
}

// checkIsolation: the guest reaches the forwarded git port and nothing else.
func checkIsolation(t *testing.T, r report, p probeParams, deny *denyListener) {
	t.Helper()
	got := r.lines("reach")
	var want []string
	for _, a := range p.allow {
		want = append(want, "open "+a)
	}
	for _, a := range p.deny {
		want = append(want, "closed "+a)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reachability from the guest: -want, +got:\n%s", diff)
	}
	if n := deny.accepted.Load(); n > 0 {
		t.Errorf("the host listener that the guest must not reach accepted %d connections", n)
	}
}

// checkApply: the unit ran runs times in this boot and the agent's state,
// metrics and the stand-in switch agree on the outcome for commit.
func checkApply(t *testing.T, r report, runs int, commit, outcome string) *state.State {
	t.Helper()
	if inv := r.lines("apply-invocations"); len(inv) != runs {
		t.Errorf("nix-gitops-apply.service ran %d times in this boot, want %d", len(inv), runs)
	}
	if strings.Contains(r["wait"], "timeout") {
		t.Errorf("probe: %s", r["wait"])
	}
	var st state.State
	if err := json.Unmarshal([]byte(r["state"]), &st); err != nil {
		t.Errorf("cannot read the agent's state.json: %v: %q", err, r["state"])
		return nil
	}
	if st.Last == nil || st.Last.Outcome != outcome || st.Last.Commit != commit {
		t.Errorf("state.json last run: want %s of %s, got %+v", outcome, commit, st.Last)
	}
	if outcome == "applied" && (st.Applied == nil || st.Applied.Commit != commit) {
		t.Errorf("state.json applied: want commit %s (the served head), got %+v", commit, st.Applied)
	}
	if v, err := metric(r["metrics"], "nix_gitops_last_outcome", map[string]string{"outcome": outcome}); err != nil || v != 1 {
		t.Errorf("metrics: want nix_gitops_last_outcome{outcome=%q} 1, got %v (%v)", outcome, v, err)
	}
	if st.Applied != nil {
		if v, err := metric(r["metrics"], "nix_gitops_applied_info", map[string]string{"commit": st.Applied.Commit}); err != nil || v != 1 {
			t.Errorf("metrics: want nix_gitops_applied_info{commit=%q} 1, got %v (%v)", st.Applied.Commit, v, err)
		}
	}
	if st.Applied != nil && r["profile"] != st.Applied.StorePath {
		t.Errorf("the system profile points to %q, the state says %s", r["profile"], st.Applied.StorePath)
	}
	// The stand-in switch-to-configuration records every activation; the
	// last one that succeeded is what runs now.
	active := ""
	for _, l := range r.lines("switch-calls") {
		if f := strings.Fields(l); len(f) == 3 && f[2] == "ok" && (f[0] == "switch" || f[0] == "test") {
			active = f[1]
		}
	}
	if st.Applied != nil && active != st.Applied.StorePath {
		t.Errorf("the last activation was %q, want the applied generation %s; calls:\n%s", active, st.Applied.StorePath, r["switch-calls"])
	}
	return &st
}

// render writes the rewritten claim to a file and renders it with labctl's
// own code (labctl render): the composition function, in-process, with the
// input from crossplane/composition.yaml. It returns the user-data snippet
// and the VM's initialization block: what Proxmox would be handed.
func render(t *testing.T, root, dir string, c *repo.Claim) ([]byte, map[string]any) {
	t.Helper()
	b, err := yaml.Marshal(c.Object)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "dns01.yaml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := labctl.Render(context.Background(), root, []string{file})
	if err != nil {
		t.Fatalf("labctl render of the rewritten claim: %v", err)
	}
	if len(rs) != 1 {
		t.Fatalf("labctl render: want one claim, got %d", len(rs))
	}
	for _, res := range rs[0].Resources {
		if res.Name == compose.VM {
			init := dig(t, res.Object, "spec", "forProvider", "initialization").([]any)[0].(map[string]any)
			return []byte(rs[0].UserData), init
		}
	}
	t.Fatalf("labctl render composed no %q resource", compose.VM)
	return nil, nil
}

func dig(t *testing.T, m map[string]any, path ...string) any {
	t.Helper()
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("composed resource has no %s", strings.Join(path, "."))
		}
		v = mm[p]
	}
	return v
}

func readClaim(t *testing.T, path string) *repo.Claim {
	t.Helper()
	docs, err := repo.ReadDocs(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if repo.IsClaim(d) {
			c, err := repo.ParseClaim(d)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
	t.Fatalf("%s holds no Machine claim", path)
	return nil
}

// guestFlakeRef rewrites the claim's flake ref to the git server as the
// guest reaches it: same path, ref and host attribute; plain HTTP on the
// forwarded address (the stand-in carries no TLS trust for a test CA).
func guestFlakeRef(t *testing.T, ref string) (string, string) {
	t.Helper()
	u, err := url.Parse(strings.TrimPrefix(ref, "git+"))
	if err != nil || u.Path == "" {
		t.Fatalf("the claim's flake ref %q is not a git+https URL with a path: %v", ref, err)
	}
	u.Scheme, u.Host = "http", gitAddr
	return "git+" + u.String(), strings.TrimPrefix(u.Path, "/")
}

func commit(t *testing.T, flake *testflake.Repo, host string, s testflake.System) string {
	t.Helper()
	sha, err := flake.Commit(testflake.Spec{Hosts: map[string]testflake.System{host: s}}, testflake.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sha
}

func writeSeed(t *testing.T, path string, s nocloud.Seed) {
	t.Helper()
	var b bytes.Buffer
	if err := nocloud.WriteISO(&b, s); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// workDir is the test's folder: removed afterwards, unless VMTEST_KEEP is set
// (then its consoles, reports and disk stay for a look).
func workDir(t *testing.T) string {
	t.Helper()
	if os.Getenv("VMTEST_KEEP") == "" {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("", "vmtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("VMTEST_KEEP: the guest's logs and disk stay in %s", dir)
	return dir
}

// readMounts is the host's mount table, to prove the test mounted nothing.
func readMounts(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	slices.Sort(lines)
	return lines
}

// waitGroupEmpty gives the kernel a moment to reap QEMU's killed children.
func waitGroupEmpty(pgid int) []string {
	var left []string
	for i := 0; i < 20; i++ {
		if left = groupMembers(pgid); len(left) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return left
}
