//go:build vm

package vm

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/nixcheck"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// dns01's resolver in the guest. Our module (nix/modules/dns-unbound.nix)
// sets services.unbound.settings; nixpkgs' unbound module, which cannot be
// had here, adds its own settings, renders unbound.conf, installs it as
// /etc/unbound/unbound.conf and runs unbound. unboundStandIn does that part
// (a stand-in, named as such), as nixpkgs' module does at Swarsel/nixpkgs
// 4aa6836a648ca76c68866decf0c8965e36ec2a3b
// nixos/modules/services/networking/unbound.nix (the 26.05 line):
//   - settings.server: chroot, pidfile and username "" (unbound runs as the
//     unit's User=), directory /var/lib/unbound, do-daemonize no,
//     ip-freebind yes, auto-trust-anchor-file /var/lib/unbound/root.key
//     (enableRootTrustAnchor); remote-control.control-enable no;
//   - environment.etc."unbound/unbound.conf" is the rendered file
//     (internal/nixcheck's RenderUnbound, the stand-in of its rendering);
//   - systemd.services.unbound: unbound -p -d -c /etc/unbound/unbound.conf,
//     Type=notify, User=unbound, StateDirectory=unbound, restarted when the
//     file changes (restartTriggers: X-Restart-Triggers, systemd-lib.nix
//     unitConfig), wanted by multi-user.target and nss-lookup.target;
//   - resolveLocalQueries: networking.resolvconf.useLocalResolver, so
//     /etc/resolv.conf names 127.0.0.1.
//
// Left out: preStart's unbound-anchor (it fetches the root key from the
// internet; root.key starts as the root's published DS record instead) and
// the unit's sandboxing.
type unboundStandIn struct {
	conf string
}

// rootDS is the root zone's key-signing key (KSK-2017) as a DS record, a
// public fact: the trust anchor unbound starts from.
const rootDS = `. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D`

// unboundUnit is the stand-in of nixpkgs' systemd.services.unbound.
func (u unboundStandIn) unit() string {
	return fmt.Sprintf(`[Unit]
Description=Unbound recursive Domain Name Server (stand-in of NixOS's unbound module's unit, test/vm/dns.go)
After=network.target
Before=nss-lookup.target
X-Restart-Triggers=%x

[Service]
Type=notify
NotifyAccess=main
User=unbound
Group=unbound
StateDirectory=unbound
RuntimeDirectory=unbound
AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_RAW
ExecStartPre=/bin/sh -c 'test -s /var/lib/unbound/root.key || echo "%s" >/var/lib/unbound/root.key'
ExecStart=/usr/sbin/unbound -p -d -c /etc/unbound/unbound.conf
Restart=on-failure
RestartSec=5s

[Install]
WantedBy=multi-user.target nss-lookup.target
`, sha256.Sum256([]byte(u.conf)), rootDS)
}

// dns01Module is dns01's settings for our DNS module in the guest: the site
// server is slirp's (which the guest cannot reach), and the lab zone holds
// the git server's name (records: the zone's local-data) when gitRecord.
func dns01Module(gitRecord bool) string {
	records := `[ ]`
	if gitRecord {
		records = fmt.Sprintf(`[ "git.lab.home.arpa. A %s" ]`, gitAddr)
	}
	return fmt.Sprintf(`{ homelab.dns = { enable = true; siteServers = [ %q ]; localZones."lab.home.arpa." = %s; }; }`, guestDNS, records)
}

// dnsSystem gives a system dns01's resolver: our DNS module's settings
// through the stand-in above, the agent's units from our module (host),
// and the agent following the flake by the git server's name (flakeRef).
func (m *modules) dnsSystem(t *testing.T, dnsHost, host, flakeRef string) func(*testflake.System) {
	t.Helper()
	var settings map[string]any
	ms := fmt.Sprintf("[ (/. + %s) %s ]", nixcheck.NixString(filepath.Join(m.root, "nix/modules/dns-unbound.nix")), dnsHost)
	if err := nixcheck.EvalMachine(context.Background(), m.root, ms, "r.eval.config.services.unbound.settings", &settings); err != nil {
		t.Fatalf("cannot evaluate the DNS module: %v", err)
	}
	server, _ := settings["server"].(map[string]any)
	if server == nil {
		t.Fatalf("the DNS module sets no services.unbound.settings.server: %v", settings)
	}
	for k, v := range map[string]any{
		"chroot": `""`, "pidfile": `""`, "username": `""`, "directory": "/var/lib/unbound",
		"do-daemonize": false, "ip-freebind": true, "auto-trust-anchor-file": "/var/lib/unbound/root.key",
	} {
		if _, ours := server[k]; !ours {
			server[k] = v
		}
	}
	settings["remote-control"] = map[string]any{"control-enable": false}
	conf, err := nixcheck.RenderUnbound(context.Background(), m.root, settings)
	if err != nil {
		t.Fatal(err)
	}
	u := unboundStandIn{conf: conf}
	agentUnits := m.system(t, host)
	return func(s *testflake.System) {
		agentUnits(s)
		files := map[string]string{"unbound.service": u.unit()}
		for p, text := range s.SystemdFiles {
			files[p] = text
		}
		links := map[string]string{"multi-user.target.wants/unbound.service": "../unbound.service", "nss-lookup.target.wants/unbound.service": "../unbound.service"}
		for p, l := range s.SystemdLinks {
			links[p] = l
		}
		etc := map[string]string{"unbound/unbound.conf": conf, "resolv.conf": "nameserver 127.0.0.1\n"}
		for p, text := range s.Etc {
			etc[p] = text
		}
		s.SystemdFiles, s.SystemdLinks, s.Etc = files, links, etc
		s.AgentConfig = agentConfig(map[string]any{"flake": flakeRef})
	}
}

// gitName is the git server's name in the lab zone (the claim's flake ref
// names it); dns01 resolves it itself from N1 on.
const gitName = "git.lab.home.arpa"
