//go:build vm

package vm

import (
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// The systems the guest goes through. All are internal/testflake's
// NixOS-shaped stand-in toplevels (a fake, named as such: nixpkgs cannot be
// built offline), switched to by our stand-in of switch-to-configuration-ng
// (internal/stcstandin) against the guest's real systemd.
const (
	// guestSTC and guestAgent are where hack/vm-image.sh installs the
	// activation stand-in (test/vm/stc) and the agent under test.
	guestSTC   = "/usr/lib/homelab-standin/switch-to-configuration"
	guestAgent = "/usr/local/bin/nix-gitops"
	// The textfile the systems' agent config names (the NixOS monitoring
	// module's default).
	guestTextfile = "/var/lib/prometheus-node-exporter/textfile/nix-gitops.prom"
)

// agentConfig is /etc/nix-gitops/config.json of the guest's systems, as the
// NixOS module writes it from options; over holds one system's changes.
func agentConfig(over map[string]any) map[string]any {
	c := map[string]any{
		"metrics": map[string]any{"textfile": guestTextfile},
		// One try per run: the first-boot unit's own retries are what the
		// outage at first boot exercises.
		"retry": map[string]any{"attempts": 1},
		// The gate runs each system's own /etc/testflake/health.
		"health": map[string]any{"settle": "30s", "script": "/etc/testflake/health"},
		// The daemon polls often, so a step does not wait for it.
		"poll":           map[string]any{"interval": "3s", "jitter": "0s"},
		"onKernelChange": "boot",
	}
	for k, v := range over {
		c[k] = v
	}
	return c
}

// The app a state migration breaks: a service in every system; before the
// migration it refuses to start on migrated state.
const (
	appV1 = "[Unit]\nDescription=testflake app v1 (refuses migrated state)\n[Service]\nType=simple\n" +
		"ExecStartPre=/bin/sh -c '! test -e /var/lib/testflake/migrated'\nExecStart=/bin/sleep infinity\n"
	appV2 = "[Unit]\nDescription=testflake app v2 (migrates its state)\n[Service]\nType=simple\nExecStart=/bin/sleep infinity\nEnvironment=APP=2\n"
	appV3 = "[Unit]\nDescription=testflake app v3 (reads either state)\n[Service]\nType=simple\nExecStart=/bin/sleep infinity\nEnvironment=APP=3\n"
)

// system is one generation of the guest's host; the zero values are the
// template's.
func system(version string, f func(*testflake.System)) testflake.System {
	s := testflake.System{
		Version: version, Kernel: "k1", Initrd: "i1", AgentVersion: "1",
		AgentConfig: agentConfig(nil),
		Units:       map[string]string{"testflake-app.service": appV1},
		Wanted:      []string{"testflake-app.service"},
		Inhibitors:  map[string]string{"testflake-db": "1"},
	}
	if f != nil {
		f(&s)
	}
	return s
}

// template is generation 0: the system the image runs when it first boots.
// Its agent units are as `nix-gitops units` writes them (the timer and the
// daemon are there for boots 1 and 2 to start by hand); with moduleUnits,
// as our module makes them for the template's own settings
// (nix/template/configuration.nix: the agent on, nothing else).
func template(t *testing.T, m *modules, moduleUnits bool) testflake.System {
	if !moduleUnits {
		return system("template", nil)
	}
	return system("template", m.system(t, `{ services.nix-gitops.enable = true; }`))
}

// step is one commit of the plan: its name (for /vmtest/advance) and system.
type step struct {
	name string
	sys  testflake.System
}

// Host settings of the systems whose agent units come from our NixOS module
// (modules): the timer on (the daemon then off), and both off. The per-boot
// drop-in (bootCreds) comes after the module's and sets the timer's schedule.
const (
	timerOn  = `{ services.nix-gitops.enable = true; services.nix-gitops.timer.enable = true; }`
	timerOff = `{ services.nix-gitops.enable = true; }`
)

// plan is the chain of commits the guest follows, in order. Each is a child
// of the one before. The systems from D on carry the agent's units as our
// NixOS module makes them (m), so its daemon.enable and timer.enable are
// what a commit turns off and on.
func plan(t *testing.T, m *modules, v *vaultLab, nameRef string) []step {
	app3 := func(s *testflake.System) { s.Units = map[string]string{"testflake-app.service": appV3} }
	withTimer, noTimer := m.system(t, timerOn), m.system(t, timerOff)
	// The secrets module's unit in the system (V, W): the app is then one of
	// the module's services too, ordered after the secrets unit.
	withSecret := m.system(t, v.module("3"))
	secretApp := func(s *testflake.System) { s.Units, s.Wanted = nil, nil; withSecret(s) }
	// dns01's resolver (unbound with our DNS module's settings), which also
	// resolves the git server's name the agent then follows the flake by.
	resolver, lostRecord := m.dnsSystem(t, dns01Module(true), timerOff, nameRef), m.dnsSystem(t, dns01Module(false), timerOff, nameRef)
	return []step{
		// First boot: a new agent package, so the switch changes the
		// running nix-gitops-apply.service itself (a new ExecStart).
		{"A", system("a", func(s *testflake.System) { s.AgentVersion = "2" })},
		// The daemon's own unit changes with this one: it must restart.
		{"B", system("b", func(s *testflake.System) { s.AgentVersion = "3" })},
		// A state migration the previous generation cannot run on, and a
		// failing gate: the rollback leaves the app failed (stc exit 4).
		{"M", system("m", func(s *testflake.System) {
			s.AgentVersion = "3"
			s.Units = map[string]string{"testflake-app.service": appV2}
			s.ActivateExtra = "/bin/mkdir -p /var/lib/testflake && : >/var/lib/testflake/migrated\n"
			s.HealthScript = "echo 'm: unhealthy on purpose' >&2; exit 1"
		})},
		// The fix.
		{"C", system("c", func(s *testflake.System) { s.AgentVersion = "3"; app3(s) })},
		// Slow activations: the agent's unit is stopped, then killed, while
		// they run.
		{"S1", system("s1", func(s *testflake.System) { s.AgentVersion = "3"; app3(s); s.ActivateSleep = 15 })},
		{"S2", system("s2", func(s *testflake.System) { s.AgentVersion = "3"; app3(s); s.ActivateSleep = 15 })},
		// The module's daemon.enable turned off (the timer on instead): the
		// daemon, which applies it, stops once that run is over; the switch
		// starts the timer.
		{"D", system("d", func(s *testflake.System) { s.AgentVersion = "3"; app3(s); withTimer(s) })},
		// A switch inhibitor changes: boot, not switch.
		{"I", system("i", func(s *testflake.System) {
			s.AgentVersion = "3"
			app3(s)
			withTimer(s)
			s.Inhibitors = map[string]string{"testflake-db": "2"}
		})},
		// The timer turned off: the switch stops it.
		{"T", system("t", func(s *testflake.System) {
			s.AgentVersion = "3"
			app3(s)
			noTimer(s)
			s.Inhibitors = map[string]string{"testflake-db": "2"}
		})},
		// A secret from Vault: the switch adds nix-gitops-secrets.service,
		// which multi-user.target then starts while the run that switches
		// holds the agent's lock.
		{"V", system("v", func(s *testflake.System) {
			s.AgentVersion = "3"
			s.Inhibitors = map[string]string{"testflake-db": "2"}
			secretApp(s)
		})},
		// A kernel change whose gate fails after its boot; this system lets
		// the agent reboot.
		{"K", system("k", func(s *testflake.System) {
			s.AgentVersion = "3"
			app3(s)
			noTimer(s)
			s.Inhibitors = map[string]string{"testflake-db": "2"}
			s.Kernel = "k2"
			s.HealthScript = "echo 'k: unhealthy after its boot' >&2; exit 1"
			s.AgentConfig = agentConfig(map[string]any{"reboot": map[string]any{"allow": "window"}})
		})},
		// The next commit, switched to after the secrets unit failed at boot.
		{"W", system("w", func(s *testflake.System) {
			s.AgentVersion = "3"
			s.Inhibitors = map[string]string{"testflake-db": "2"}
			secretApp(s)
		})},
		// dns01 resolves for itself, the git server's name included.
		{"N1", system("n1", func(s *testflake.System) {
			s.AgentVersion = "3"
			s.Inhibitors = map[string]string{"testflake-db": "2"}
			app3(s)
			resolver(s)
		})},
		// A commit that loses the git server's record: after its switch the
		// name does not resolve, though every unit runs.
		{"N2", system("n2", func(s *testflake.System) {
			s.AgentVersion = "3"
			s.Inhibitors = map[string]string{"testflake-db": "2"}
			app3(s)
			lostRecord(s)
		})},
	}
}
