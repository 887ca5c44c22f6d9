package securefile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := Owner{UID: os.Getuid(), GID: os.Getgid(), Mode: 0o440}
	if err := Write(p, []byte("new"), o, true); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "new" {
		t.Fatalf("content %q, %v", b, err)
	}
	if !o.Matches(p) {
		fi, _ := os.Stat(p)
		t.Errorf("mode %v, want 0440", fi.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".s.tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// TestOnTmpfs asks the kernel (statfs) about a real tmpfs and a folder on
// the test machine's disk.
func TestOnTmpfs(t *testing.T) {
	testenv.Real(t)
	if err := OnTmpfs("/dev/shm"); err != nil {
		t.Errorf("/dev/shm: %v", err)
	}
	// A folder on disk: the test's temporary folder, or else the checkout.
	disk := t.TempDir()
	if OnTmpfs(disk) == nil {
		disk = testenv.RepoRoot(t)
	}
	if err := OnTmpfs(disk); !errors.Is(err, ErrNotTmpfs) {
		t.Errorf("%s: %v, want ErrNotTmpfs", disk, err)
	}
}
