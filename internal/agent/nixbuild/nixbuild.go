// Package nixbuild evaluates and builds a host's system toplevel with the
// real nix CLI: step 1 of what `nixos-rebuild switch` does (design §4).
//
// Eval and build are two commands so each has its own timeout and failure
// stage: `nix eval --raw <flake>#…toplevel.drvPath`, then `nix-store
// --realise` of that derivation. Both read the same on Nix 2.8 (which has
// no --print-out-paths) and on newer Nix.
package nixbuild

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/run"
)

// Nix runs nix.
type Nix struct {
	// CacheDir is Nix's cache (XDG_CACHE_HOME), kept in the agent's state
	// folder so the agent's fetches never mix with a user's.
	CacheDir string
	// GitEnv is the environment of the agent's own git (its deploy key,
	// askpass for the token, no user config). The git that nix runs to
	// fetch the flake's inputs gets it too, so a private input on the same
	// server is reached as the flake itself is. Proxy settings
	// (http_proxy and the like) come with the agent's environment.
	GitEnv []string
}

// flakeFlags turn on what the agent needs whatever nix.conf says: a NixOS
// host need not enable flakes for nix-gitops (nixos-rebuild-ng passes the
// same, nixos_rebuild/nix.py FLAKE_FLAGS).
var flakeFlags = []string{"--extra-experimental-features", "nix-command flakes"}

func (n *Nix) env() []string {
	extra := append([]string{"XDG_CACHE_HOME=" + n.CacheDir, "LC_ALL=C"}, n.GitEnv...)
	return run.Environ(extra...)
}

// Eval evaluates installable's drvPath: it fails on a broken flake without
// building anything.
func (n *Nix) Eval(ctx context.Context, installable string, timeout time.Duration) (string, error) {
	out, err := run.Output(ctx, run.Cmd{Name: "nix", Args: append(append([]string{}, flakeFlags...), "eval", "--raw", installable+".drvPath"), Env: n.env(), Timeout: timeout})
	if err != nil {
		return "", fmt.Errorf("cannot evaluate %s: %w", installable, err)
	}
	drv := strings.TrimSpace(string(out))
	if !strings.HasSuffix(drv, ".drv") {
		return "", fmt.Errorf("cannot evaluate %s: drvPath %q is not a derivation", installable, drv)
	}
	return drv, nil
}

// Build realises the derivation Eval returned and returns its out path.
// outLink is an indirect GC root on the result that holds it until the
// profile does. Realising the evaluated drvPath builds exactly what was
// evaluated without evaluating again (`nix build` of the flake would fetch
// and evaluate the flake a second time), and `nix-store --realise
// --add-root` reads the same on Nix 2.8 and on newer Nix, where
// `nix build DRV` changed meaning.
func (n *Nix) Build(ctx context.Context, drvPath, outLink string, timeout time.Duration) (string, error) {
	_ = os.Remove(outLink)
	if _, err := run.Output(ctx, run.Cmd{Name: "nix-store", Args: []string{"--realise", drvPath, "--add-root", outLink}, Env: n.env(), Timeout: timeout}); err != nil {
		return "", fmt.Errorf("cannot build %s: %w", drvPath, err)
	}
	out, err := os.Readlink(outLink)
	if err != nil || !strings.HasPrefix(out, "/") {
		return "", fmt.Errorf("cannot read the build result %s: %v", outLink, err)
	}
	return out, nil
}
