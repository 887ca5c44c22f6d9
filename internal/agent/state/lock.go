package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// LockName is the lock file's name in the state folder.
const LockName = "lock"

// ErrBusy is returned when another run holds the lock and the caller did
// not want to wait (or waited long enough).
var ErrBusy = errors.New("another nix-gitops run holds the lock")

// Lock is a held flock on the state folder's lock file. The kernel drops it
// when the process dies, kill -9 included, so a crash never leaves a stale
// lock behind.
type Lock struct{ f *os.File }

// Acquire takes the lock in dir, waiting until ctx is done. With a ctx that
// is already done it tries once. The holder's pid is written into the file
// for the error message of whoever waits.
func Acquire(ctx context.Context, dir string) (*Lock, error) {
	p := filepath.Join(dir, LockName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open lock file: %w", err)
	}
	for wait := 10 * time.Millisecond; ; wait = min(wait*2, 500*time.Millisecond) {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("cannot lock %s: %w", p, err)
		}
		select {
		case <-ctx.Done():
			holder := readHolder(p)
			f.Close()
			return nil, fmt.Errorf("%w (%s, held by pid %s): wait for it to finish, or look at `nix-gitops status`", ErrBusy, p, holder)
		case <-time.After(wait):
		}
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

func readHolder(p string) string {
	b, err := os.ReadFile(p)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
