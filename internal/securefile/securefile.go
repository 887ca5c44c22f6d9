// Package securefile writes files that hold secrets: atomically (a reader
// sees the old content or the new, never part of either), with their owner,
// group and mode set before the content becomes visible under the name, and,
// for secrets that must never reach a disk, only on tmpfs.
package securefile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Owner is who a file belongs to and its permission bits.
type Owner struct {
	UID, GID int
	Mode     os.FileMode
}

// Root is root:root 0600.
var Root = Owner{UID: 0, GID: 0, Mode: 0o600}

// Write replaces path with data owned by o. The temporary file is made in
// the same folder with mode 0600 and given o's owner and mode before the
// rename, so there is no moment at which the name shows the new content
// with looser permissions. sync makes it durable (for files on disk); a
// tmpfs needs none.
func Write(path string, data []byte, o Owner, sync bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot create a temporary file in %s: %w", dir, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("cannot write %s: %w", tmp, err)
	}
	if err := f.Chown(o.UID, o.GID); err != nil {
		return fmt.Errorf("cannot give %s to %d:%d: %w", path, o.UID, o.GID, err)
	}
	if err := f.Chmod(o.Mode); err != nil {
		return fmt.Errorf("cannot set the mode of %s: %w", path, err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("cannot sync %s: %w", tmp, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cannot rename %s to %s: %w", tmp, path, err)
	}
	ok = true
	if sync {
		if d, err := os.Open(dir); err == nil {
			_ = d.Sync()
			d.Close()
		}
	}
	return nil
}

// The statfs f_type of the in-memory filesystems (linux/magic.h).
const (
	tmpfsMagic = 0x01021994
	ramfsMagic = 0x858458f6
)

// ErrNotTmpfs marks a folder on a filesystem that keeps its data on a disk.
var ErrNotTmpfs = errors.New("not on tmpfs")

// OnTmpfs checks that dir is on tmpfs (or ramfs): in memory (or swap, where
// the machine has any), gone at power-off.
func OnTmpfs(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("cannot tell which filesystem %s is on: %w", dir, err)
	}
	switch uint32(st.Type) {
	case tmpfsMagic, ramfsMagic:
		return nil
	}
	return fmt.Errorf("%s is on a filesystem that keeps data on disk (type 0x%x), %w", dir, uint32(st.Type), ErrNotTmpfs)
}

// MkdirAll makes dir and its parents with mode, and fixes the mode of dir
// itself if it already existed looser.
func MkdirAll(dir string, mode os.FileMode) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm() != mode.Perm() {
		if err := os.Chmod(dir, mode); err != nil {
			return fmt.Errorf("cannot set the mode of %s: %w", dir, err)
		}
	}
	return nil
}

// Matches tells whether path has o's owner, group and mode.
func (o Owner) Matches(path string) bool {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false
	}
	return int(st.Uid) == o.UID && int(st.Gid) == o.GID && os.FileMode(st.Mode&0o7777) == o.Mode
}
