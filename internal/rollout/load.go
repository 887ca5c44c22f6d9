// load.go: the plan's Input, read from Git alone: the policy and the claims
// at the target commit, and where each machine's deploy ref is.

package rollout

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/homelab-infra/homelab-infra/internal/repo"
)

// Load fetches the remote's refs and reads a plan's Input for target (a
// revision: a commit id, or "main"). The target must be on the branch: the
// driver chooses when a reviewed commit reaches a machine, never what runs.
func Load(ctx context.Context, g *Git, target string, sel Selector, group string) (Input, error) {
	if err := g.Fetch(ctx); err != nil {
		return Input{}, err
	}
	main, err := g.Main(ctx)
	if err != nil {
		return Input{}, err
	}
	if target == "" || target == g.branch() {
		target = main
	}
	sha, err := g.Resolve(ctx, target)
	if err != nil {
		return Input{}, err
	}
	onMain, err := g.IsAncestor(ctx, sha, main)
	if err != nil {
		return Input{}, err
	}
	if !onMain {
		return Input{}, fmt.Errorf("the target %s is not on %s (at %s): a rollout only moves machines to reviewed commits on %s; merge it first", short(sha), g.branch(), short(main), g.branch())
	}
	files, err := g.Files(ctx, sha, repo.ClaimsDir, PolicyPath)
	if err != nil {
		return Input{}, err
	}
	pb, ok := files[PolicyPath]
	if !ok {
		return Input{}, fmt.Errorf("%s does not exist at %s: commit a rollout policy (see the README's Rollouts section)", PolicyPath, short(sha))
	}
	policy, err := ParsePolicy(pb)
	if err != nil {
		return Input{}, err
	}
	claims, err := claimsOf(files)
	if err != nil {
		return Input{}, fmt.Errorf("cannot read the claims at %s: %w", short(sha), err)
	}
	deploy, err := g.Refs(ctx, "deploy")
	if err != nil {
		return Input{}, err
	}
	in := Input{Target: sha, Policy: policy, Selector: sel, Group: group}
	for _, c := range claims {
		m := Machine{Host: repo.FlakeAttr(c.Spec), Role: c.Spec.Role, Tags: c.Spec.Tags, From: deploy[repo.FlakeAttr(c.Spec)]}
		if m.From != "" && m.From != sha {
			if m.Ahead, err = g.IsAncestor(ctx, sha, m.From); err != nil {
				return Input{}, err
			}
			if m.Changed, err = g.Changed(ctx, m.From, sha); err != nil {
				return Input{}, err
			}
		}
		in.Machines = append(in.Machines, m)
	}
	return in, nil
}

// claimsOf parses the claim files among files, through the repo package
// (the one reader of claims), from a scratch folder.
func claimsOf(files map[string][]byte) ([]*repo.Claim, error) {
	dir, err := os.MkdirTemp("", "rollout-claims-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for name, b := range files {
		rel, ok := strings.CutPrefix(name, repo.ClaimsDir+"/")
		if !ok || strings.Contains(rel, "/") {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, rel), b, 0o600); err != nil {
			return nil, err
		}
	}
	return repo.Claims(dir)
}
