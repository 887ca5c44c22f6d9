package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"golang.org/x/sys/unix"
)

// A Process is one component of the stack, run as a child in its own process
// group with its output in a log file.
type Process struct {
	Name    string
	LogPath string

	cmd *exec.Cmd
	// exited is closed once the leader has exited. It stays a zombie, not
	// reaped, until Stop: while it is, its pid, and so the id of its process
	// group, cannot be given to another process, and Stop's group kill
	// reaches only what this child forked. (Process ids wrap within minutes
	// on a busy test machine: a group kill after the reap could hit an
	// unrelated group that reused the id, another test's apiserver say.)
	exited  chan struct{}
	exitErr error
	reap    chan struct{}
	reaped  chan struct{}
	once    sync.Once
}

// StartProcess runs bin with args and env (a complete environment: the child
// inherits nothing from the test, so a developer's KUBECONFIG cannot leak
// in). Output goes to logPath.
//
// The child gets its own process group, so Stop reaches anything it forks,
// and Pdeathsig, so the kernel kills it if the test binary dies without
// running its clean-up (a panic, a timeout, SIGKILL).
func StartProcess(name, logPath string, env []string, bin string, args ...string) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open log for %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd,
		exited: make(chan struct{}), reap: make(chan struct{}), reaped: make(chan struct{})}
	go func() {
		p.exitErr = waitExited(cmd.Process.Pid)
		close(p.exited)
		<-p.reap
		_ = cmd.Wait()
		_ = f.Close()
		close(p.reaped)
	}()
	return p, nil
}

// cldExited is si_code CLD_EXITED: the child called exit (the other codes
// are kills and dumps).
const cldExited = 1

// waitExited waits until pid has exited without reaping it (waitid with
// WNOWAIT), and returns its exit status as an error (nil for status 0).
func waitExited(pid int) error {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			return fmt.Errorf("cannot wait for process %d: %w", pid, err)
		}
	}
	// For SIGCHLD the siginfo union holds si_pid, si_uid, si_status after
	// the three int32 header fields and their padding (offset 16).
	status := *(*int32)(unsafe.Add(unsafe.Pointer(&info), 24))
	switch info.Code {
	case cldExited:
		if status == 0 {
			return nil
		}
		return fmt.Errorf("exit status %d", status)
	default:
		return fmt.Errorf("signal: %v", syscall.Signal(status))
	}
}

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.exited:
		return true, p.exitErr
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL after grace, kills
// whatever the group still holds, and reaps the child. It is safe to call
// more than once.
func (p *Process) Stop(grace time.Duration) {
	pgid := -p.cmd.Process.Pid
	select {
	case <-p.exited:
	default:
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(grace):
			_ = syscall.Kill(pgid, syscall.SIGKILL)
			<-p.exited
		}
	}
	p.once.Do(func() {
		// The leader is an unreaped zombie: the group id is still ours.
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		close(p.reap)
	})
	<-p.reaped
}

// Kill ends the process and its group at once with SIGKILL, as a crash or
// an OOM kill does: no handler runs.
func (p *Process) Kill() {
	select {
	case <-p.exited:
	default:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	p.Stop(0)
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string {
	return tailFile(p.LogPath, n)
}

func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	// Logs can be large after a benchmark; the tail is in the last 64 KiB.
	const window = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > window {
		_, _ = f.Seek(st.Size()-window, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// PeakRSS returns the process's peak resident set size in bytes (VmHWM).
func (p *Process) PeakRSS() (int64, error) {
	return procStatusKB(p.Pid(), "VmHWM")
}

// ResetPeakRSS makes the kernel forget the peak so far (clear_refs 5), so
// a benchmark measures only its own work.
func (p *Process) ResetPeakRSS() error {
	path := fmt.Sprintf("/proc/%d/clear_refs", p.Pid())
	if err := os.WriteFile(path, []byte("5"), 0o200); err != nil {
		return fmt.Errorf("cannot reset peak RSS of %s: %w", p.Name, err)
	}
	return nil
}

func procStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("cannot read status of process %d: %w", pid, err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := strings.Cut(string(line), ":")
		if !ok || k != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cannot parse %s of process %d: %w", field, pid, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("cannot find %s in the status of process %d", field, pid)
}

// WaitTCP waits until addr accepts TCP connections. It fails early if one
// of watch exits.
func WaitTCP(ctx context.Context, addr string, timeout time.Duration, watch ...*Process) error {
	err := poll(ctx, timeout, func(ctx context.Context) (bool, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return false, err
		}
		_ = c.Close()
		return true, nil
	}, watch...)
	if err != nil {
		return fmt.Errorf("nothing listens on %s: %w", addr, err)
	}
	return nil
}

// FreePort returns a free port for a component to bind, outside the
// kernel's ephemeral range, where no outgoing connection can take it first
// (testenv.FreePorts says why).
func FreePort() (int, error) {
	ps, err := testenv.FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ps[0], nil
}
