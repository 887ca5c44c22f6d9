//go:build vm

package vm

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/nocloud"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// TestCloneWithoutUserData: a clone of the template that got none of our
// user-data (cloned by hand: Proxmox writes its cloud-init drive, but no
// snippet names a flake) has nothing to follow. Its boot must end
// "running", not "degraded": the template's module writes the agent's
// config file all the same, so the units must wait for the flake target,
// and systemd skips nix-gitops-apply.service (its condition fails) instead
// of failing it for want of a flake.
//
// Fakes (named): the guest is the Debian stand-in for the NixOS template
// (hack/vm-image.sh) and generation 0 is internal/testflake's stand-in
// toplevel, carrying the agent's units as our module makes them for the
// template.
func TestCloneWithoutUserData(t *testing.T) {
	// Beside TestClaimBootsAndConverges: its one boot overlaps that test's
	// setup (Vault, the plan's module evaluations on the host) and first
	// boot. One after the other, the clone's 2-5 minutes were all added to
	// the suite's; side by side they cost what the two guests contend for
	// the host's two cores, and the claim's guest does mostly one thing at a
	// time (its agent and switches used about 140 CPU-s in the first 7
	// minutes of boot 2 of 2026-12-07 11:28). Each boot logs QEMU's CPU
	// time against its wall time, the figure to watch.
	t.Parallel()
	testenv.Real(t)
	for _, p := range []string{"qemu-system-x86_64", "qemu-img", "socat", "debootstrap", "mkfs.ext4", "unshare", "git", "go", "nix-instantiate"} {
		testenv.LookPath(t, p)
	}
	if os.Geteuid() != 0 {
		t.Fatal("the VM suite builds its guest image with debootstrap and must run as root (CI does)")
	}
	root := testenv.RepoRoot(t)
	dir := workDir(t)
	flake, err := testflake.New(filepath.Join(dir, "flake"), testflake.Options{Guest: &testflake.Guest{STC: guestSTC, Agent: guestAgent}})
	if err != nil {
		t.Fatal(err)
	}
	_, img := standIn(t, root, dir, flake, "dns01", true)

	// Proxmox's drive without a snippet: an empty cloud-config, and the
	// network-config Proxmox writes from the clone's ipconfig0.
	userData := []byte("#cloud-config\n")
	networkConfig, err := nocloud.NetworkConfig([]nocloud.Interface{{Index: 0, MAC: guestMAC,
		IPConfig: nocloud.IPConfig{IP: guestIP + "/24", Gateway: guestGateway}}}, nocloud.DNS{Nameservers: []string{guestDNS}})
	if err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(dir, "seed.iso")
	writeSeed(t, seed, nocloud.Seed{UserData: userData, MetaData: nocloud.MetaData(userData, networkConfig), NetworkConfig: networkConfig})
	g, err := newGuest(dir, img, seed, guestMAC, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := bootAndReport(t, g, bootOptions{name: "clone", timeout: bootLimit}, probeParams{
		admin: "nobody", steps: []string{"settled"}, waitLimit: int(waitLimit / time.Second), textfile: guestTextfile, git: "127.0.0.1:9"})
	if !ok {
		return
	}
	checkBoot(t, "clone", r, func(t *testing.T, r report) {
		if got := r["system-state"]; got != "running" {
			t.Errorf("the clone's boot ended %q, want running; failed units:\n%s", got, r["failed-units"])
		}
		if got := r.property("apply-unit", "ConditionResult"); got != "no" {
			t.Errorf("nix-gitops-apply.service's condition: %q, want no (skipped: no flake target)", got)
		}
		if got := r.property("apply-unit", "ExecMainStartTimestampMonotonic"); got != "0" {
			t.Errorf("nix-gitops-apply.service ran the agent (main start at %s µs); want it skipped", got)
		}
	})
}
