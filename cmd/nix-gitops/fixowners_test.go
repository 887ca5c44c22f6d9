package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// TestFixOwners is the activation snippet's command: after the switch
// created a service's user, `nix-gitops secrets --fix-owners` gives that
// user its secret files (written root-only before the user existed), and
// names a user that still does not exist. No Vault, no state.
func TestFixOwners(t *testing.T) {
	testenv.Real(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "tsig")
	if err := os.WriteFile(file, []byte("value"), 0o400); err != nil {
		t.Fatal(err)
	}
	decl := func(owner string) string {
		b, _ := json.Marshal(map[string]any{
			"vault":   map[string]any{"address": "https://vault.invalid:8200", "roleId": "r"},
			"secrets": map[string]any{"tsig": map[string]any{"kv": map[string]any{"path": "secret/x/y", "field": "k"}, "path": file, "owner": owner, "group": owner, "mode": "0440"}},
		})
		p := filepath.Join(dir, owner+".json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(p string) (int, string) {
		var stderr bytes.Buffer
		cmd := exec.Command(agentBin(t), "secrets", "--fix-owners", "--declarations", p)
		cmd.Stderr = &stderr
		return testenv.ExitCode(t, cmd.Run()), stderr.String()
	}
	if code, stderr := run(decl("daemon")); code != 0 {
		t.Fatalf("--fix-owners: exit %d\n%s", code, stderr)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1 || st.Gid != 1 || fi.Mode().Perm() != 0o440 {
		t.Errorf("after --fix-owners: %d:%d %04o, want daemon:daemon (1:1) 0440", st.Uid, st.Gid, fi.Mode().Perm())
	}
	code, stderr := run(decl("nix-gitops-test-nobody"))
	if code != 1 || !strings.Contains(stderr, `secrets.tsig: owner "nix-gitops-test-nobody"`) {
		t.Errorf("an owner that does not exist: exit %d, want 1 naming it:\n%s", code, stderr)
	}
}
