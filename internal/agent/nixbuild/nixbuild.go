// Package nixbuild evaluates and builds a host's system toplevel with the
// real nix CLI: step 1 of what `nixos-rebuild switch` does (design §4).
//
// Eval and build are two commands so each has its own timeout and failure
// stage: `nix eval --raw …toplevel.drvPath`, then `nix build --json`, which
// finds the evaluation in Nix's eval cache (the flake is locked by rev=).
// The commands work on Nix 2.8 (no --print-out-paths, so --json) and on
// newer Nix alike.
package nixbuild

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/run"
)

// Nix runs nix.
type Nix struct {
	// CacheDir is Nix's cache (XDG_CACHE_HOME), kept in the agent's state
	// folder so the agent's fetches never mix with a user's.
	CacheDir string
}

func (n *Nix) env() []string {
	return run.Environ("XDG_CACHE_HOME="+n.CacheDir, "LC_ALL=C")
}

// Eval evaluates installable's drvPath: it fails on a broken flake without
// building anything.
func (n *Nix) Eval(ctx context.Context, installable string, timeout time.Duration) (string, error) {
	out, err := run.Output(ctx, run.Cmd{Name: "nix", Args: []string{"eval", "--raw", installable + ".drvPath"}, Env: n.env(), Timeout: timeout})
	if err != nil {
		return "", fmt.Errorf("cannot evaluate %s: %w", installable, err)
	}
	drv := strings.TrimSpace(string(out))
	if !strings.HasSuffix(drv, ".drv") {
		return "", fmt.Errorf("cannot evaluate %s: drvPath %q is not a derivation", installable, drv)
	}
	return drv, nil
}

// Build builds installable and returns its out path. outLink, when set,
// keeps a GC root on the result until the profile holds it.
func (n *Nix) Build(ctx context.Context, installable, outLink string, timeout time.Duration) (string, error) {
	args := []string{"build", "--json"}
	if outLink != "" {
		args = append(args, "--out-link", outLink)
	} else {
		args = append(args, "--no-link")
	}
	out, err := run.Output(ctx, run.Cmd{Name: "nix", Args: append(args, installable), Env: n.env(), Timeout: timeout})
	if err != nil {
		return "", fmt.Errorf("cannot build %s: %w", installable, err)
	}
	var res []struct {
		Outputs map[string]string `json:"outputs"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res) != 1 || res[0].Outputs["out"] == "" {
		return "", fmt.Errorf("cannot read nix build --json output %q: %v", out, err)
	}
	return res[0].Outputs["out"], nil
}
