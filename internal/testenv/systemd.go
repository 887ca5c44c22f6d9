package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

// SystemdVerify runs the real systemd-analyze verify over units (files in
// dir; their drop-ins are read from dir too): it parses them as systemd does
// and reports unknown keys, bad values and missing binaries. Any complaint
// about a file in dir, or about nix-gitops, fails t.
func SystemdVerify(t testing.TB, dir string, units []string) {
	t.Helper()
	sa := LookPath(t, "systemd-analyze")
	cmd := exec.Command(sa, append([]string{"verify", "--man=no"}, units...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, dir) || strings.Contains(line, "nix-gitops") {
			t.Errorf("systemd-analyze verify complains: %s", line)
		}
	}
}
