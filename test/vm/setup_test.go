//go:build vm

package vm

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/labctl"
	"github.com/homelab-infra/homelab-infra/internal/nocloud"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// bootAndReport boots the guest with the probe and returns its report. A boot
// that produced no complete report fails the test with the console attached.
// Every boot gets the per-boot drop-ins of the agent's units (see bootCreds).
func bootAndReport(t *testing.T, g *guest, o bootOptions, p probeParams) (report, bool) {
	t.Helper()
	if o.creds == nil {
		o.creds = map[string][]byte{}
	}
	for k, v := range bootCreds() {
		o.creds[k] = v
	}
	o.creds["systemd.extra-unit."+reportUnit] = []byte(reportUnitText(p))
	o.creds[probeCred] = probeScript
	o.cmdline = append(o.cmdline, "systemd.wants="+reportUnit)
	res := g.boot(o)
	t.Logf("%s: %s (QEMU used %s of host CPU)", o.name, res.took.Round(time.Second), res.cpu.Round(time.Second))
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
	// Where the boot's time went, for every boot (a passing run keeps no
	// report): with the time of QEMU's whole run logged above, the guest's
	// uptime when the probe started and ended splits it into the boot, the
	// probe's steps and the power-off.
	t.Logf("%s: systemd-analyze time: %s\n%s", o.name, r["boot-timing"], r["step-times"])
	return r, true
}

// bootCreds are per-boot systemd drop-ins, handed over as credentials (they
// live in /run, so the image and the systems stay as they are). What the
// suite proves is that a start by the timer applies, that a failed first
// boot is retried and that systemd restarts a killed daemon; the schedule
// itself (2 min after boot, then daily, with jitter) and the delays before
// a retry (2 min) and a restart (30 s) are internal/agent/units' to test.
// So the timer fires 1 s after it starts, and a retry or a restart comes
// 1 s after the failure, instead of idling the guest: the daemon's 30 s
// alone were half a minute of boot 2 (killed, then "Scheduled restart job"
// 30.1 s later in the run of 2026-12-07 11:34). The restarted daemon then
// finds the killed run's switch still running and waits for it
// (activation.WaitIdle), as checkKilledMidSwitch says it does; with 30 s
// the switch was over before the daemon came back.
//
// The drop-ins are named (UNIT~NAME, systemd >= 255) so that they come after
// every other: systemd reads a unit's drop-ins in the order of their names,
// and the module's overrides.conf sets the timer's schedule too.
func bootCreds() map[string][]byte {
	return map[string][]byte{
		// An empty OnBootSec= resets every monotonic trigger of the unit.
		"systemd.unit-dropin.nix-gitops-apply.timer~" + bootDropin:   []byte("[Timer]\nOnBootSec=\nOnActiveSec=1s\nRandomizedDelaySec=0\nAccuracySec=1s\n"),
		"systemd.unit-dropin.nix-gitops-apply.service~" + bootDropin: []byte("[Service]\nRestartSec=1s\n"),
		"systemd.unit-dropin.nix-gitops.service~" + bootDropin:       []byte("[Service]\nRestartSec=1s\n"),
	}
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

// readMounts is the host's mount table (/proc/self/mounts), to prove the
// test mounted nothing; mountsUnder picks the test's own part of it.
func readMounts(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ownFolders are the folders the test may mount in (its work folder and the
// image cache; see mountsUnder), symlinks resolved as the mount table has
// them.
func ownFolders(dirs ...string) []string {
	var out []string
	for _, d := range dirs {
		if r, err := filepath.EvalSymlinks(d); err == nil {
			d = r
		}
		out = append(out, d)
	}
	return out
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

// bootDropin names the per-boot drop-ins: "zz-" sorts after overrides.conf.
const bootDropin = "zz-vmtest"
