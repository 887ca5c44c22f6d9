package runtimeimage

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// HostClosure reads programs of the build host and every shared library
// they load, as the dynamic linker resolves them there (ldd), for an image
// that needs a C program beside its static binary: the rollout steps' git.
// Paths are kept as on the host (a Debian /lib/x86_64-linux-gnu or a Nix
// store path alike), so the programs' interpreter and RPATHs hold in the
// image; LibraryPath lists the libraries' folders for LD_LIBRARY_PATH.
// A symlinked program is read through its link and stored under the name
// asked for (git-remote-https, a link to git-remote-http, is both).
type Closure struct {
	// Executables by path without the leading slash.
	Executables map[string][]byte
	// LibraryPath is the libraries' folders, ':'-separated.
	LibraryPath string
}

// HostClosure collects programs and their libraries from this host.
func HostClosure(programs ...string) (*Closure, error) {
	c := &Closure{Executables: map[string][]byte{}}
	var dirs []string
	add := func(path string) error {
		key := strings.TrimPrefix(filepath.Clean(path), "/")
		if _, ok := c.Executables[key]; ok {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("cannot read %s for the image: %w", path, err)
		}
		c.Executables[key] = b
		return nil
	}
	for _, p := range programs {
		if err := add(p); err != nil {
			return nil, err
		}
		libs, err := ldd(p)
		if err != nil {
			return nil, err
		}
		for _, l := range libs {
			if err := add(l); err != nil {
				return nil, err
			}
			if d := filepath.Dir(l); !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	c.LibraryPath = strings.Join(dirs, ":")
	return c, nil
}

// ldd lists the files a program loads: its interpreter and libraries.
func ldd(program string) ([]string, error) {
	out, err := exec.Command("ldd", program).Output()
	if err != nil {
		return nil, fmt.Errorf("cannot list the libraries of %s (ldd): %w", program, err)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)", or the
		// interpreter "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO has
		// no file.
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		case len(f) >= 3 && f[1] == "=>" && f[2] == "not":
			return nil, fmt.Errorf("%s needs %s, which this host lacks", program, f[0])
		}
	}
	return libs, nil
}
