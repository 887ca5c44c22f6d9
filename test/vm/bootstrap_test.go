//go:build vm

package vm

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

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
	// Boot 1's failed units are checked once its first switch is done
	// (checkFirstBootApply reads b1/failed-units): this boot's probe has no
	// settled step, so its failed-units section is always empty and a check
	// of it here could not fail.
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
