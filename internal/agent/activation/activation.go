// Package activation does steps 2 and 3 of `nixos-rebuild switch`: set the
// system profile (nix-env -p PROFILE --set OUT) and run
// OUT/bin/switch-to-configuration switch|boot, with a timeout. Rollback
// re-activates a recorded generation the same way.
package activation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/run"
)

// Generation is a profile generation: its number and toplevel.
type Generation struct {
	Number    int
	StorePath string
}

// Current reads what profile points to. ok is false when the profile does
// not exist yet (a machine converging from nothing).
func Current(profile string) (g Generation, ok bool, err error) {
	link, err := os.Readlink(profile)
	if errors.Is(err, os.ErrNotExist) {
		return Generation{}, false, nil
	}
	if err != nil {
		return Generation{}, false, fmt.Errorf("cannot read the system profile: %w", err)
	}
	base := filepath.Base(profile)
	num, found := strings.CutPrefix(filepath.Base(link), base+"-")
	num, found2 := strings.CutSuffix(num, "-link")
	n, convErr := strconv.Atoi(num)
	if !found || !found2 || convErr != nil {
		return Generation{}, false, fmt.Errorf("system profile %s points to %s, not to a %s-N-link generation", profile, link, base)
	}
	if !filepath.IsAbs(link) {
		link = filepath.Join(filepath.Dir(profile), link)
	}
	out, err := os.Readlink(link)
	if err != nil {
		return Generation{}, false, fmt.Errorf("cannot read generation %d: %w", n, err)
	}
	return Generation{Number: n, StorePath: out}, true, nil
}

// SetProfile makes out the profile's new current generation.
func SetProfile(ctx context.Context, profile, out string) (Generation, error) {
	if err := os.MkdirAll(filepath.Dir(profile), 0o755); err != nil {
		return Generation{}, fmt.Errorf("cannot create the profile folder: %w", err)
	}
	if _, err := run.Output(ctx, run.Cmd{Name: "nix-env", Args: []string{"-p", profile, "--set", out}, Env: run.Environ("LC_ALL=C"), Timeout: 5 * time.Minute}); err != nil {
		return Generation{}, fmt.Errorf("cannot set the system profile: %w", err)
	}
	g, ok, err := Current(profile)
	if err != nil || !ok || g.StorePath != out {
		return Generation{}, fmt.Errorf("cannot set the system profile: it points to %q after nix-env (%v)", g.StorePath, err)
	}
	return g, nil
}

// Restore points profile back at g: the generation itself when its link
// still exists, otherwise a new generation of the same toplevel.
func Restore(ctx context.Context, profile string, g Generation) (Generation, error) {
	link := fmt.Sprintf("%s-%d-link", profile, g.Number)
	if target, err := os.Readlink(link); err == nil && target == g.StorePath {
		if _, err := run.Output(ctx, run.Cmd{Name: "nix-env", Args: []string{"-p", profile, "--switch-generation", strconv.Itoa(g.Number)}, Env: run.Environ("LC_ALL=C"), Timeout: 5 * time.Minute}); err != nil {
			return Generation{}, fmt.Errorf("cannot switch the profile back to generation %d: %w", g.Number, err)
		}
		cur, ok, err := Current(profile)
		if err != nil || !ok || cur.StorePath != g.StorePath {
			return Generation{}, fmt.Errorf("cannot switch the profile back to generation %d: it points to %q (%v)", g.Number, cur.StorePath, err)
		}
		return cur, nil
	}
	return SetProfile(ctx, profile, g.StorePath)
}

// Switch runs toplevel/bin/switch-to-configuration action.
func Switch(ctx context.Context, toplevel, action string, timeout time.Duration) error {
	bin := filepath.Join(toplevel, "bin", "switch-to-configuration")
	_, err := run.Output(ctx, run.Cmd{Name: bin, Args: []string{action}, Env: run.Environ("NIXOS_INSTALL_BOOTLOADER="), Timeout: timeout})
	if err != nil {
		return fmt.Errorf("cannot %s to %s: %w", action, toplevel, err)
	}
	return nil
}

// KernelChanged reports whether toplevel's kernel, initrd or kernel
// modules differ from the booted system's: then the new system needs a
// reboot to be fully active (and, by policy, is activated with "boot").
// A missing booted system (not NixOS, first boot of a test) counts as no
// change. Files are the same when they resolve to the same store path or
// have the same content.
func KernelChanged(booted, toplevel string) (bool, error) {
	if _, err := os.Stat(booted); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	for _, name := range []string{"kernel", "initrd", "kernel-modules"} {
		same, err := sameFile(filepath.Join(booted, name), filepath.Join(toplevel, name))
		if err != nil {
			return false, fmt.Errorf("cannot compare the %s with the booted system's: %w", name, err)
		}
		if !same {
			return true, nil
		}
	}
	return false, nil
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
