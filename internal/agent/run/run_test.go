package run

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTimeoutKillsGroup: a timeout kills the child and the children it
// started (its process group), and says it timed out.
func TestTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	// On a loaded machine the shell may not even have started its child
	// when a short timeout kills it; then there is no grandchild to check
	// (and an empty pid would name /proc/stat), so try again with a longer
	// timeout until the child was started.
	var pid string
	for _, timeout := range []time.Duration{300 * time.Millisecond, time.Second, 3 * time.Second, 10 * time.Second} {
		t0 := time.Now()
		_, err := Output(context.Background(), Cmd{Name: "/bin/sh", Args: []string{"-c", "/bin/sleep 30 & echo $! > " + pidFile + "; wait"}, Timeout: timeout})
		var re *Error
		if !errors.As(err, &re) || !re.TimedOut || !strings.Contains(err.Error(), "timed out") {
			t.Fatalf("err = %v, want a timeout", err)
		}
		if took := time.Since(t0); took > timeout+10*time.Second {
			t.Errorf("the timeout of %s took %s", timeout, took)
		}
		b, _ := os.ReadFile(pidFile)
		if pid = strings.TrimSpace(string(b)); pid != "" {
			break
		}
	}
	if pid == "" {
		t.Fatal("the shell never started its child, even with a 10s timeout")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break // gone, or a zombie waiting for init
		}
		if time.Now().After(deadline) {
			t.Fatalf("the grandchild %s survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestErrorKeepsStderrTail(t *testing.T) {
	_, err := Output(context.Background(), Cmd{Name: "/bin/sh", Args: []string{"-c", "echo first >&2; echo last words >&2; exit 7"}})
	var re *Error
	if !errors.As(err, &re) || re.ExitCode() != 7 || !strings.Contains(err.Error(), "last words") {
		t.Fatalf("err = %v, want exit 7 with the stderr", err)
	}
}

func TestEnviron(t *testing.T) {
	t.Setenv("NIX_GITOPS_T", "old")
	env := Environ("NIX_GITOPS_T=new", "NIX_GITOPS_U=x")
	n := 0
	for _, e := range env {
		if strings.HasPrefix(e, "NIX_GITOPS_T=") {
			n++
			if e != "NIX_GITOPS_T=new" {
				t.Errorf("Environ kept %q", e)
			}
		}
	}
	if n != 1 {
		t.Errorf("NIX_GITOPS_T appears %d times", n)
	}
}
