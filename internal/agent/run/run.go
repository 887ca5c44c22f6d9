// Package run starts the agent's child processes (git, nix, nix-env,
// switch-to-configuration, systemctl, probes) one way: with a timeout that
// kills the whole process group, SIGKILL on the agent's own death (so a
// kill -9 of the agent never leaves a switch running that the next run would
// race), the tail of stderr kept for the error, and a count of processes
// started for the benchmarks.
package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// killGrace is how long a child has between SIGTERM and SIGKILL.
const killGrace = 5 * time.Second

// Started counts the processes started through this package.
var Started atomic.Int64

// Cmd describes one child process.
type Cmd struct {
	Name    string   // program
	Args    []string // arguments: never secrets
	Dir     string
	Env     []string // full environment; nil means the agent's own
	Timeout time.Duration
	Stdin   []byte
}

// Error is a failed child: how it ended and the tail of its stderr.
type Error struct {
	Cmd      string
	Err      error
	TimedOut bool
	Stderr   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Cmd)
	if e.TimedOut {
		b.WriteString(": timed out")
	} else {
		b.WriteString(": " + e.Err.Error())
	}
	if e.Stderr != "" {
		b.WriteString(": " + e.Stderr)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Signaled reports whether the child was killed by a signal it did not
// ask for through a timeout (the OOM killer, a kill by hand).
func (e *Error) Signaled() bool {
	var ee *exec.ExitError
	if errors.As(e.Err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			return ws.Signaled()
		}
	}
	return false
}

// ExitCode returns the child's exit status, or -1.
func (e *Error) ExitCode() int {
	var ee *exec.ExitError
	if errors.As(e.Err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// Output runs c and returns its stdout.
func Output(ctx context.Context, c Cmd) ([]byte, error) {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Dir = c.Dir
	cmd.Env = c.Env
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	// Own process group, so a timeout kills the child's children too; and
	// die with the agent.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// On timeout: SIGTERM to the group first, so nix can stop its builders
	// (they run in sessions of their own, out of reach of a group kill),
	// then SIGKILL to whatever is left of the group.
	cmd.Cancel = func() error {
		pgid := cmd.Process.Pid
		err := syscall.Kill(-pgid, syscall.SIGTERM)
		time.AfterFunc(killGrace, func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
		return err
	}
	cmd.WaitDelay = killGrace + time.Second
	var stdout bytes.Buffer
	stderr := &tail{max: 4096}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	Started.Add(1)
	err := cmd.Run()
	if err != nil {
		e := &Error{Cmd: describe(c), Err: err, Stderr: strings.TrimSpace(stderr.String())}
		if ctx.Err() != nil {
			e.TimedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
			if !e.TimedOut {
				e.Err = ctx.Err()
			}
		}
		return stdout.Bytes(), e
	}
	return stdout.Bytes(), nil
}

// describe names the command for errors and logs: the program's base name
// and its first arguments, which the callers keep free of secrets.
func describe(c Cmd) string {
	name := c.Name
	if i := strings.LastIndexByte(name, '/'); i >= 0 && !strings.Contains(name, "switch-to-configuration") {
		name = name[i+1:]
	}
	args := c.Args
	if len(args) > 3 {
		args = args[:3]
	}
	return strings.TrimSpace(fmt.Sprintf("%s %s", name, strings.Join(args, " ")))
}

// tail keeps the last max bytes written to it.
type tail struct {
	buf []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte("…"), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.buf) }

// Environ returns the agent's environment with the named variables
// replaced or added (KEY=VALUE entries).
func Environ(extra ...string) []string {
	env := os.Environ()
	// The agent talks to Vault in-process and never hands a child a token;
	// one from an operator's shell (sudo -E) must not reach git or nix.
	env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, "VAULT_TOKEN=") })
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		out := env[:0:0]
		for _, e := range env {
			if !strings.HasPrefix(e, k+"=") {
				out = append(out, e)
			}
		}
		env = append(out, kv)
	}
	return env
}
