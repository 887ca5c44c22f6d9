// boot.go: what needs a reboot, and what refuses a switch: the comparisons
// nixos-rebuild's callers make before `switch`.

package activation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// bootFiles are what NixOS's system.autoUpgrade compares to decide a reboot
// (nixos/modules/tasks/auto-upgrade.nix: readlink of /run/booted-system and
// the profile's initrd, kernel and kernel-modules), plus the kernel command
// line and the firmware, which also take effect only at boot.
var bootFiles = []string{"kernel", "initrd", "kernel-modules", "kernel-params", "firmware"}

// BootDiff lists what of toplevel takes effect only after a reboot into it,
// compared with the booted system: the kernel, initrd, kernel modules,
// kernel parameters, and the firmware where both have one. A missing booted
// system (not NixOS, the first boot of a test) differs in nothing. Files are
// the same when they resolve to the same store path or have the same
// content.
func BootDiff(booted, toplevel string) ([]string, error) {
	if _, err := os.Stat(booted); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var diff []string
	for _, name := range bootFiles {
		a, b := filepath.Join(booted, name), filepath.Join(toplevel, name)
		if name == "firmware" && !(exists(a) && exists(b)) {
			continue
		}
		same, err := sameFile(a, b)
		if err != nil {
			return nil, fmt.Errorf("cannot compare the %s with the booted system's: %w", name, err)
		}
		if !same {
			diff = append(diff, name)
		}
	}
	return diff, nil
}

// KernelChanged reports whether toplevel needs a reboot to be fully active
// (see BootDiff).
func KernelChanged(booted, toplevel string) (bool, error) {
	d, err := BootDiff(booted, toplevel)
	return len(d) > 0, err
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// InhibitorsChanged lists the switch inhibitors (NixOS 26.05
// system.switch.inhibitors, written to TOPLEVEL/switch-inhibitors as a JSON
// object) whose value differs between the running system and toplevel. Only
// names present in both count, as in the pre-switch check that
// switchable-system.nix installs: a non-empty list makes `switch` fail, and
// the system must be booted into instead. A missing file is an empty object.
func InhibitorsChanged(running, toplevel string) ([]string, error) {
	read := func(dir string) (map[string]string, error) {
		b, err := os.ReadFile(filepath.Join(dir, "switch-inhibitors"))
		if errors.Is(err, os.ErrNotExist) || dir == "" {
			return map[string]string{}, nil
		}
		if err != nil {
			return nil, err
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("cannot parse %s/switch-inhibitors: %w", dir, err)
		}
		return m, nil
	}
	old, err := read(running)
	if err != nil {
		return nil, err
	}
	next, err := read(toplevel)
	if err != nil {
		return nil, err
	}
	var changed []string
	for k, v := range old {
		if nv, ok := next[k]; ok && nv != v {
			changed = append(changed, fmt.Sprintf("%s: %s -> %s", k, v, nv))
		}
	}
	sort.Strings(changed)
	return changed, nil
}

// InitInterfaceChanged reports whether toplevel's init-interface-version
// differs from the running system's: switch-to-configuration then refuses
// to activate it (exit 100) and it takes effect only at boot. Where no
// system runs (running == "") nothing is compared.
func InitInterfaceChanged(running, toplevel string) bool {
	if running == "" {
		return false
	}
	a, _ := os.ReadFile(filepath.Join(running, "init-interface-version"))
	b, _ := os.ReadFile(filepath.Join(toplevel, "init-interface-version"))
	return !bytes.Equal(a, b)
}

func sameFile(a, b string) (bool, error) {
	ra, errA := filepath.EvalSymlinks(a)
	rb, errB := filepath.EvalSymlinks(b)
	switch {
	case errors.Is(errA, os.ErrNotExist) && errors.Is(errB, os.ErrNotExist):
		return true, nil
	case errors.Is(errA, os.ErrNotExist) || errors.Is(errB, os.ErrNotExist):
		return false, nil
	case errA != nil:
		return false, errA
	case errB != nil:
		return false, errB
	case ra == rb:
		return true, nil
	}
	sa, err := os.Stat(ra)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(rb)
	if err != nil {
		return false, err
	}
	if sa.IsDir() || sb.IsDir() || sa.Size() != sb.Size() {
		return sa.IsDir() && sb.IsDir() && ra == rb, nil
	}
	return sameContent(ra, rb)
}

func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, errA := io.ReadFull(fa, ba)
		nb, errB := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if errA == io.EOF || errA == io.ErrUnexpectedEOF {
			return errB == io.EOF || errB == io.ErrUnexpectedEOF, nil
		}
		if errA != nil {
			return false, errA
		}
		if errB != nil {
			return false, errB
		}
	}
}
