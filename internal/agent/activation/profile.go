// profile.go: the system profile, as nix-env keeps it: PROFILE is a link to
// PROFILE-N-link, which links to generation N's toplevel.

package activation

import (
	"context"
	"errors"
	"fmt"
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

// Delete removes generation n from profile (nix-env --delete-generations),
// so a generation that failed does not stay in the profile, nor in the boot
// loader's menu that is made from it. n must not be the current generation.
func Delete(ctx context.Context, profile string, n int) error {
	if _, err := run.Output(ctx, run.Cmd{Name: "nix-env", Args: []string{"-p", profile, "--delete-generations", strconv.Itoa(n)}, Env: run.Environ("LC_ALL=C"), Timeout: 5 * time.Minute}); err != nil {
		return fmt.Errorf("cannot remove generation %d from the system profile: %w", n, err)
	}
	return nil
}

// Find returns the newest generation of profile whose toplevel is
// storePath.
func Find(profile, storePath string) (Generation, bool) {
	links, _ := filepath.Glob(profile + "-*-link")
	best := Generation{}
	for _, l := range links {
		num, _ := strings.CutSuffix(strings.TrimPrefix(filepath.Base(l), filepath.Base(profile)+"-"), "-link")
		n, err := strconv.Atoi(num)
		if err != nil {
			continue
		}
		if target, err := os.Readlink(l); err == nil && target == storePath && n > best.Number {
			best = Generation{Number: n, StorePath: storePath}
		}
	}
	return best, best.Number > 0
}

// Running is the toplevel the machine runs now: what currentSystem
// (/run/current-system, set by every activation) resolves to. ok is false
// when there is none (not NixOS, or a test that did not set one up).
func Running(currentSystem string) (string, bool) {
	p, err := filepath.EvalSymlinks(currentSystem)
	if err != nil {
		return "", false
	}
	return p, true
}
