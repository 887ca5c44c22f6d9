//go:build vm

package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/agent/state"
	"github.com/homelab-infra/homelab-infra/internal/nocloud"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

const (
	// The MAC Proxmox would have given net0 (its OUI, bc:24:11).
	guestMAC = "bc:24:11:00:10:53"
	// A boot (TCG) plus its agent runs; generous, as CI shares two cores
	// and a busy machine slows a TCG guest several times over (a first boot
	// took more than 15 min beside other suites at a load of 25).
	bootLimit = 25 * time.Minute
	// The boot with the daemon's many steps.
	longBootLimit = 45 * time.Minute
	// How long the probe waits for one run or one state.
	waitLimit = 10 * time.Minute
)

// TestClaimBootsAndConverges follows the example claim dns01 from its YAML to
// a guest that converges itself from Git, with our stand-in of NixOS's
// switch-to-configuration-ng (internal/stcstandin) activating every
// generation under the guest's real systemd, over five boots of the same
// disk:
//
//  1. first boot of the template (generation 0): cloud-init creates the admin
//     user, sets the host name and writes /etc/nix-flake-target; the git
//     server is down at first, and nix-gitops-apply.service retries until it
//     converges, through a switch that replaces its own unit; then a manual
//     rollback is drift, which the timer's run re-applies;
//  2. the daemon: a switch that changes its own unit (it restarts itself into
//     the new binary); a rollback that leaves a unit failed (degraded); the
//     daemon stopped, then killed, during a switch, which runs on in its own
//     unit; a commit that turns the daemon off and the timer on (the daemon
//     stops after that run, the switch starts the timer); a switch
//     inhibitor change (boot, not switch); no switch runs the first-boot unit
//     again;
//  3. the boot into that generation: its gate runs then; a commit that turns
//     the timer off (its switch stops it); a switch that adds the secrets
//     unit of our module, with the real Vault (secrets_test.go); a kernel
//     change is applied for the next boot;
//  4. the boot into the kernel change: its gate fails, and the previous
//     generation is the boot default again, with a reboot scheduled;
//  5. the boot into that generation with Vault down (its secrets unit fails),
//     then a switch with Vault back; dns01's own resolver loses the git
//     server's name in a commit, which the gate rolls back (dns_test.go).
//
// Fakes (named): the guest is a Debian stand-in for the NixOS template
// (hack/vm-image.sh), every system is internal/testflake's NixOS-shaped
// stand-in toplevel, its activation program is internal/stcstandin, the
// units our modules define are rendered by internal/nixcheck's stand-in of
// nixpkgs' systemd-lib.nix, unbound's unit by test/vm/dns.go's stand-in of
// nixpkgs' unbound module, and Proxmox is replaced by internal/nocloud
// writing its cloud-init drive.
func TestClaimBootsAndConverges(t *testing.T) {
	// Beside TestCloneWithoutUserData (see there): nothing they use is
	// shared but the image cache, whose builds take turns (its lock).
	t.Parallel()
	testenv.Real(t)
	for _, p := range []string{"qemu-system-x86_64", "qemu-img", "socat", "debootstrap", "mkfs.ext4", "unshare", "git", "go"} {
		testenv.LookPath(t, p)
	}
	if os.Geteuid() != 0 {
		t.Fatal("the VM suite builds its guest image with debootstrap and must run as root (CI does)")
	}
	root := testenv.RepoRoot(t)
	dir := workDir(t)
	mountsBefore := readMounts(t)

	// The claim, rewritten to the guest's network: QEMU user networking's
	// subnet, and the git server as the guest sees it.
	claim := readClaim(t, filepath.Join(root, repo.ClaimsDir, "dns01.yaml"))
	spec := claim.Object["spec"].(map[string]any)
	spec["network"] = map[string]any{"ip": guestIP, "cidr": guestCIDR, "gateway": guestGateway, "dns": []any{guestDNS}}
	nixSpec := spec["nix"].(map[string]any)
	flakeRef, repoPath := guestFlakeRef(t, nixSpec["flakeRef"].(string))
	nixSpec["flakeRef"] = flakeRef
	hostname := spec["hostname"].(string)

	// Vault, and the claim's Vault identity: cloud-init writes the wrapping
	// token of the machine's first secret_id at first boot.
	vault := startVaultLab(t, hostname)
	spec["secrets"] = map[string]any{"role": hostname, "wrappingTokenSecretRef": map[string]any{"name": hostname + "-vault"}}

	// The flake repo: the plan's commits, a chain, the branch at the first.
	flake, err := testflake.New(filepath.Join(dir, "flake"), testflake.Options{Guest: &testflake.Guest{STC: guestSTC, Agent: guestAgent}})
	if err != nil {
		t.Fatal(err)
	}
	// The image: the template's own system is generation 0.
	m, img := standIn(t, root, dir, flake, hostname, false)
	commits := map[string]string{}
	// The flake by the git server's name, which dns01 resolves itself.
	nameRef := strings.Replace(flakeRef, gitAddr, gitName, 1)
	for _, s := range plan(t, m, vault, nameRef) {
		commits[s.name] = commit(t, flake, hostname, s.sys)
	}

	// Its resources, exactly as labctl render makes them.
	userData, initialization := render(t, root, dir, claim)
	userData = vault.withToken(t, userData)
	ifaces, dns, err := nocloud.FromInitialization(initialization, []string{guestMAC})
	if err != nil {
		t.Fatal(err)
	}
	networkConfig, err := nocloud.NetworkConfig(ifaces, dns)
	if err != nil {
		t.Fatal(err)
	}
	seedPath := filepath.Join(dir, "seed.iso")
	writeSeed(t, seedPath, nocloud.Seed{UserData: userData, MetaData: nocloud.MetaData(userData, networkConfig), NetworkConfig: networkConfig})

	// The repo, served over smart HTTP on host loopback at the claim's path.
	serveRoot := filepath.Join(dir, "srv")
	if err := os.MkdirAll(filepath.Dir(filepath.Join(serveRoot, repoPath)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(flake.Bare, filepath.Join(serveRoot, repoPath)); err != nil {
		t.Fatal(err)
	}
	git, err := startGitServer(serveRoot, flake.Bare, flake.Branch, commits)
	if err != nil {
		t.Fatal(err)
	}
	if err := git.advance("A"); err != nil {
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
		if err := vault.gate.close(); err != nil {
			t.Errorf("cannot stop the Vault gate: %v", err)
		}
		for _, p := range []int{git.port, deny.port, vault.gate.port} {
			if !portClosed(p) {
				t.Errorf("port %d still accepts connections after the test", p)
			}
		}
		// Only mounts in the test's own folders: other suites on this
		// machine (a CNI network namespace, say) mount elsewhere meanwhile.
		own := ownFolders(dir, filepath.Dir(img.disk))
		if diff := cmp.Diff(mountsUnder(mountsBefore, own), mountsUnder(readMounts(t), own)); diff != "" {
			t.Errorf("the mount table changed in the test's folders %q during the test (-before, +after):\n%s", own, diff)
		}
	}()

	gitHostPort := fmt.Sprintf("%s:%d", gitAddr, gitPort)
	git.controls["vault-up"] = func() error { vault.gate.down.Store(false); return nil }
	g, err := newGuest(dir, img, seedPath, guestMAC, map[string]int{gitHostPort: git.port, vaultAddr: vault.gate.port})
	if err != nil {
		t.Fatal(err)
	}
	params := func(steps ...string) probeParams {
		return probeParams{
			admin:     spec["bootstrap"].(map[string]any)["adminUser"].(string),
			steps:     steps,
			waitLimit: int(waitLimit / time.Second),
			allow:     []string{gitHostPort, vaultAddr},
			deny: []string{
				fmt.Sprintf("%s:%d", guestGateway, deny.port), // slirp's alias for host loopback
				fmt.Sprintf("%s:%d", hostIP, deny.port),       // the host's own address
				fmt.Sprintf("%s:22", gitAddr),                 // a port not forwarded
				fmt.Sprintf("%s:53", guestDNS),                // slirp's DNS forwarder
			},
			textfile: guestTextfile,
			git:      gitHostPort,
		}
	}

	// Boot 1: the first boot, with the git server down for its first fetch.
	git.failFirst.Store(1)
	p1 := params("boot", "first-boot-facts", "snap:b1", "rollback-by-hand", "timer", "snap:drift")
	r1, ok := bootAndReport(t, g, bootOptions{name: "boot1", timeout: bootLimit}, p1)
	if !ok {
		return
	}
	checkBoot(t, "boot1", r1, func(t *testing.T, r report) {
		checkFirstBoot(t, r, hostname, hostname+"."+spec["domain"].(string), flakeRef, toStrings(spec["bootstrap"].(map[string]any)["sshAuthorizedKeys"]))
		checkNetwork(t, r)
		checkIsolation(t, r, p1, deny)
		checkFirstBootApply(t, r.snap(t, "b1"), commits["A"], git)
		checkDrift(t, r.snap(t, "drift"), r.snap(t, "b1"), commits["A"])
		checkApplyRuns(t, r.snap(t, "drift"), 3, "the outage, the apply and the timer's run; not the switch by hand")
	})

	// Boot 2: the daemon, through B, M, C, S1, S2 and I.
	if err := git.advance("B"); err != nil {
		t.Fatal(err)
	}
	r2, ok := bootAndReport(t, g, bootOptions{name: "boot2", timeout: longBootLimit}, params(
		"boot", "snap:b2", "advance:B", "daemon:applied", "snap:daemon",
		"advance:M", "wait:rolled-back-degraded", "snap:degraded",
		"advance:C", "wait:applied", "snap:fixed",
		"advance:S1", "stop:nix-gitops.service", "snap:stopped", "daemon:applied",
		"advance:S2", "kill:nix-gitops.service", "wait:applied", "snap:killed",
		"advance:D", "wait:applied", "idle", "snap:daemonoff",
		"advance:I", "timer", "wait:pending-reboot", "snap:inhibited", "try-switch-default"))
	if !ok {
		return
	}
	checkBoot(t, "boot2", r2, func(t *testing.T, r report) {
		b2 := r.snap(t, "b2")
		b2.contains(t, "agent-journal", "first boot already converged")
		checkDaemonRestart(t, r.snap(t, "daemon"), commits["B"])
		checkDegradedRollback(t, r.snap(t, "degraded"), commits["M"], commits["B"])
		fixed := r.snap(t, "fixed")
		fixed.ran(t, "applied", commits["C"], "")
		fixed.applied(t, commits["C"])
		checkStoppedMidSwitch(t, r, r.snap(t, "stopped"), commits["S1"])
		checkKilledMidSwitch(t, r, r.snap(t, "killed"), commits["S2"])
		checkDaemonOff(t, r.snap(t, "daemonoff"), commits["D"])
		checkInhibited(t, r, r.snap(t, "inhibited"), commits["I"])
		checkApplyRuns(t, r.snap(t, "inhibited"), 3, "the boot-time start, the timer's first run and the timer's run of I; not the daemon's switches")
	})

	// Boot 3: the inhibited generation boots and is gated; a kernel change.
	r3, ok := bootAndReport(t, g, bootOptions{name: "boot3", timeout: bootLimit}, params(
		"boot", "snap:b3", "advance:T", "timer", "wait:applied", "snap:timeroff",
		"advance:V", "apply", "wait:applied", "snap:secrets",
		"advance:K", "apply", "wait:pending-reboot", "snap:kernel"))
	if !ok {
		return
	}
	checkBoot(t, "boot3", r3, func(t *testing.T, r report) {
		b3 := r.snap(t, "b3")
		b3.last(t, "applied", commits["I"], state.StageBootHealth)
		b3.applied(t, commits["I"])
		if b3.booted() != b3.current() || b3.st.PendingBoot != nil || b3.st.RebootRequired {
			t.Errorf("b3: booted %s, running %s, pending %+v, reboot required %v: want the booted generation applied, nothing pending",
				b3.booted(), b3.current(), b3.st.PendingBoot, b3.st.RebootRequired)
		}
		checkTimerOff(t, r.snap(t, "timeroff"), commits["T"])
		checkSecretsAdded(t, r.snap(t, "secrets"), commits["V"], vault)
		k := r.snap(t, "kernel")
		k.last(t, "pending-reboot", commits["K"], "")
		if !k.st.RebootRequired || k.st.PendingBoot == nil || !strings.Contains(k.st.PendingBoot.Reason, "kernel") {
			t.Errorf("kernel: reboot required %v, pending %+v: want a pending boot naming the kernel", k.st.RebootRequired, k.st.PendingBoot)
		}
	})

	// Boot 4: the kernel change boots and fails its gate.
	r4, ok := bootAndReport(t, g, bootOptions{name: "boot4", timeout: bootLimit}, params("boot", "snap:b4", "reboot-scheduled"))
	if !ok {
		return
	}
	checkBoot(t, "boot4", r4, func(t *testing.T, r report) {
		checkBootGateFailed(t, r, r.snap(t, "b4"), commits["K"], commits["V"])
	})

	// Boot 5: the previous generation, V, boots with Vault down; then dns01's
	// own resolver loses the git server's name.
	vault.gate.down.Store(true)
	r5, ok := bootAndReport(t, g, bootOptions{name: "boot5", timeout: bootLimit}, params(
		"boot", "snap:vaultdown", "control:vault-up", "advance:W", "apply", "wait:applied", "snap:afterfail",
		"advance:N1", "apply", "wait:applied", "resolve:dns", "snap:dns",
		"advance:N2", "apply", "wait:rolled-back", "resolve:dnsback", "snap:dnsbroken"))
	if !ok {
		return
	}
	checkBoot(t, "boot5", r5, func(t *testing.T, r report) {
		checkSecretsAfterFail(t, r.snap(t, "vaultdown"), r.snap(t, "afterfail"), commits["W"], vault)
		checkDNS(t, r, commits)
	})
}
