package proxmoxsim

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// TestNodeSSHD runs the documented node set-up (deploy/proxmox/node.sh)
// in a simulated node and logs in as the provider does: the upload bpg
// makes works without sudo, as an unprivileged user, and every write
// outside the snippets folder, and every way to root, is refused.
func TestNodeSSHD(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "sshd")
	ssh := testenv.LookPath(t, "ssh")
	s := newSim(t)
	d, err := s.NodeSSHD(filepath.Join(t.TempDir(), "sshd"), "pve1", filepath.Join(testenv.RepoRoot(t), "deploy", "proxmox", "node.sh"), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(d.PrivateKey), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(stdin, command string) (string, error) {
		cmd := exec.Command(ssh, "-i", keyFile, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "BatchMode=yes", "-o", "LogLevel=ERROR", d.User+"@"+d.Addr, command)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	snippets := filepath.Join(s.StoragePath("local"), "snippets")

	if out, err := run("", "id -u"); err != nil || strings.TrimSpace(out) == "0" {
		t.Log(d.Log())
		t.Fatalf("the provider's login: want a user other than root, got %q (%v)", out, err)
	}
	// bpg's probe and upload (proxmox/ssh/client.go at v0.111.1: probeSudo,
	// then uploadFile's try_sudo tee), as it sends them.
	probe := `if [ "$(id -u)" = "0" ]; then echo "0"; elif [ $(sudo -n /usr/sbin/pvesm apiinfo 2>&1 | grep "APIVER" | wc -l) -gt 0 ] || sudo -n /usr/sbin/qm --help >/dev/null 2>&1; then echo "1"; else echo "0"; fi`
	if out, err := run("", probe); err != nil || strings.TrimSpace(out) != "0" {
		t.Errorf("bpg's sudo probe: want 0 (no sudo), got %q (%v)", out, err)
	}
	upload := `/bin/bash -c 'export TRY_SUDO_USE_SUDO=0; try_sudo(){ "$@"; }; try_sudo /usr/bin/tee ` + snippets + `/dns01-1053-user-data.yaml'`
	if out, err := run("#cloud-config\n", upload); err != nil {
		t.Fatalf("the snippet upload: %v: %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(s.SnippetsDir(), "dns01-1053-user-data.yaml"))
	if err != nil || string(b) != "#cloud-config\n" {
		t.Fatalf("the snippet did not arrive where the simulator reads it: %q, %v", b, err)
	}

	refused := map[string]struct{ reason, command string }{
		"StorageRoot":   {"the storage's own folder", "/usr/bin/tee " + s.StoragePath("local") + "/x"},
		"DotDot":        {"out of the snippets folder by ..", "/usr/bin/tee " + snippets + "/../x"},
		"Etc":           {"the node's configuration", "/usr/bin/tee /etc/x"},
		"OtherStorage":  {"the storage root's parent", "/usr/bin/tee " + filepath.Dir(s.StoragePath("local")) + "/x"},
		"Sudo":          {"no sudo rule at all", "sudo -n /usr/bin/tee /etc/x"},
		"ReplaceOthers": {"a snippet root wrote", "/usr/bin/tee " + snippets + "/root-owned.yaml"},
	}
	if err := os.WriteFile(filepath.Join(s.SnippetsDir(), "root-owned.yaml"), []byte("root\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range refused {
		t.Run(name, func(t *testing.T) {
			if out, err := run("x\n", tc.command); err == nil {
				t.Errorf("%s: want the write refused, it succeeded: %s", tc.reason, out)
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(s.SnippetsDir(), "root-owned.yaml")); string(b) != "root\n" {
		t.Errorf("root's snippet was changed: %q", b)
	}
}
