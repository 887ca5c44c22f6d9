package nixcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// The root zone's key-signing key (KSK-2017, DS digest type 2), a public
// fact: the trust anchor unbound validates with, as enableRootTrustAnchor
// gives the real resolver.
const rootDS = `. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D`

type dnsEval struct {
	Settings map[string]any `json:"settings"`
	Script   string         `json:"script"`
}

// evalDNS evaluates nix/modules/dns-unbound.nix with modlib against NixOS's
// option declarations (testdata/machine.nix) and returns unbound's settings
// and the script of unbound-site-zone.service.
func evalDNS(t *testing.T, dir string) dnsEval {
	t.Helper()
	ms := mods(repoFile(t, "nix/modules/dns-unbound.nix"), fmt.Sprintf(`{
	    homelab.dns = { enable = true; networkConfigDir = %s; siteForwardFile = %s; };
	  }`, NixString(filepath.Join(dir, "network")), NixString(filepath.Join(dir, "site", "forward-zone.conf"))))
	var e dnsEval
	if err := evalNixOS(t, ms, `{ settings = r.eval.config.services.unbound.settings; script = r.eval.config.systemd.services.unbound-site-zone.script; }`, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// renderUnbound renders settings as unbound.conf (RenderUnbound).
func renderUnbound(t *testing.T, settings map[string]any) string {
	t.Helper()
	conf, err := RenderUnbound(context.Background(), testenv.RepoRoot(t), settings)
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// startUnbound runs the real unbound in the foreground on 127.0.0.1:port
// with conf, and stops it when the test ends.
func startUnbound(t *testing.T, name, conf string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), name+".conf")
	if err := os.WriteFile(f, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("unbound-checkconf", f).CombinedOutput(); err != nil {
		t.Fatalf("unbound-checkconf %s: %v\n%s\n%s", name, err, out, conf)
	}
	var log bytes.Buffer
	cmd := exec.Command("unbound", "-d", "-c", f)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s's log:\n%s", name, log.String())
		}
	})
}

func freePort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// resolver asks the resolver at addr, once it answers at all (its
// built-in localhost. zone), with one query of up to timeout.
func resolver(t *testing.T, addr string, timeout time.Duration) func(name string) ([]string, error) {
	t.Helper()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", addr)
	}}
	ask := func(name string, d time.Duration) ([]string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return r.LookupHost(ctx, name)
	}
	for i := 0; ; i++ {
		if _, err := ask("localhost.", time.Second); err == nil {
			break
		} else if i == 100 {
			t.Fatalf("unbound at %s does not answer: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return func(name string) ([]string, error) { return ask(name, timeout) }
}

// TestDNS01KeepsReachingGit: dns01 resolves for itself (resolveLocalQueries),
// so its agent must still resolve git.lab.home.arpa through its own unbound.
// The module's settings (modlib's evalModules against NixOS's option data), rendered as NixOS renders
// them (a stand-in of the unbound module's rendering), pass the real
// unbound-checkconf, and the real unbound answers a lab name, forwarding the
// site zone to the site's DNS server (a second real unbound, authoritative
// for the lab zone here). Each part of the fix is needed: without
// `local-zone: "home.arpa." nodefault` unbound answers NXDOMAIN itself;
// without domain-insecure the unsigned zone is not answered while the
// internet (the root) is out of reach, as it is here.
func TestDNS01KeepsReachingGit(t *testing.T) {
	testenv.LookPath(t, "unbound")
	testenv.LookPath(t, "unbound-checkconf")
	dir := t.TempDir()
	for _, d := range []string{"network", "site", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// What cloud-init renders for systemd-networkd from dns01's claim, with
	// the machine listed as a DNS server of its own too.
	network := "[Match]\nName=eth0\n\n[Network]\nDHCP=no\nDNS=10.0.10.1 10.0.10.53\nDomains=lab.home.arpa\n\n[Address]\nAddress=10.0.10.53/24\n\n[Route]\nGateway=10.0.10.1\n"
	if err := os.WriteFile(filepath.Join(dir, "network", "10-cloud-init-eth0.network"), []byte(network), 0o644); err != nil {
		t.Fatal(err)
	}
	e := evalDNS(t, dir)

	// unbound-site-zone.service's script: the claim's DNS server, not the
	// machine itself.
	script := exec.Command("bash", "-c", e.Script)
	if out, err := script.CombinedOutput(); err != nil {
		t.Fatalf("unbound-site-zone.service's script: %v\n%s", err, out)
	}
	fwdFile := filepath.Join(dir, "site", "forward-zone.conf")
	fwd, err := os.ReadFile(fwdFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(fwd), "forward-zone:\n  name: \"lab.home.arpa.\"\n  forward-addr: 10.0.10.1\n") || strings.Contains(string(fwd), "10.0.10.53") {
		t.Errorf("the site forward-zone from the network config:\n%s", fwd)
	}

	// The site's DNS server, on loopback for the test: authoritative for the
	// lab zone.
	sitePort := freePort(t)
	startUnbound(t, "site", fmt.Sprintf(`server:
  interface: 127.0.0.1@%d
  username: ""
  chroot: ""
  directory: "%s"
  pidfile: "%s/site.pid"
  use-syslog: no
  logfile: ""
  access-control: 127.0.0.0/8 allow
  local-zone: "lab.home.arpa." static
  local-data: "git.lab.home.arpa. A 10.0.10.5"
`, sitePort, dir, dir))

	// In the test the site server listens on loopback at its own port: the
	// one change to the generated forward-zone (the address).
	if err := os.WriteFile(fwdFile, []byte(strings.Replace(string(fwd), "forward-addr: 10.0.10.1", fmt.Sprintf("forward-addr: 127.0.0.1@%d", sitePort), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state", "root.key"), []byte(rootDS+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	cases := map[string]struct {
		reason string
		key    string // a server setting whose value drop is left out, to show it is needed
		drop   string
		want   string // "": the answer; else a substring of the error
	}{
		"Fixed":           {reason: "the module's settings resolve the lab name through the site server"},
		"BuiltinHomeArpa": {reason: "without nodefault, unbound answers home.arpa. itself (RFC 8375 built-in zone)", key: "local-zone", drop: `"home.arpa." nodefault`, want: "no such host"},
		// The root is not reachable here, as on a lab whose uplink is down
		// (or at boot, before it is up): the validator cannot prove the site
		// zone insecure and answers nothing in time, or SERVFAIL.
		"Validated": {reason: "without domain-insecure, the site zone is not answered when the internet is not reachable", key: "domain-insecure", drop: `"lab.home.arpa."`, want: "lookup git.lab.home.arpa"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			settings := deepCopy(t, e.Settings)
			server := settings["server"].(map[string]any)
			if tc.key != "" {
				l, _ := server[tc.key].([]any)
				if !slices.Contains(l, any(tc.drop)) {
					t.Fatalf("the module's server.%s %v lacks %s", tc.key, l, tc.drop)
				}
				server[tc.key] = slices.DeleteFunc(l, func(v any) bool { return v == tc.drop })
			}
			// What a run on loopback, as the test user, needs instead of the
			// NixOS module's own daemon settings.
			port := freePort(t)
			for k, v := range map[string]any{
				"interface": fmt.Sprintf("127.0.0.1@%d", port), "username": `""`, "chroot": `""`,
				"directory": fmt.Sprintf("%q", dir), "pidfile": fmt.Sprintf("%q", filepath.Join(t.TempDir(), "unbound.pid")),
				"use-syslog": false, "logfile": `""`, "trust-anchor-file": fmt.Sprintf("%q", filepath.Join(dir, "state", "root.key")),
				// the site server of this test is on loopback; a real one is not
				"do-not-query-localhost": false,
			} {
				server[k] = v
			}
			conf := renderUnbound(t, settings)
			if !strings.Contains(conf, "\ninclude: \""+fwdFile+"\"") {
				t.Fatalf("the rendered unbound.conf does not include the site forward-zone:\n%s", conf)
			}
			startUnbound(t, "dns01", conf)
			ips, err := resolver(t, fmt.Sprintf("127.0.0.1:%d", port), 15*time.Second)("git.lab.home.arpa")
			switch {
			case tc.want == "" && (err != nil || !slices.Equal(ips, []string{"10.0.10.5"})):
				t.Errorf("%s: git.lab.home.arpa = %v, %v; want 10.0.10.5\n%s", tc.reason, ips, err, conf)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("%s: git.lab.home.arpa = %v, %v; want an error with %q", tc.reason, ips, err, tc.want)
			}
		})
	}
}

func deepCopy(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
