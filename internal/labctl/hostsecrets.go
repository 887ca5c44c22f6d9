package labctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/homelab-infra/homelab-infra/internal/repo"
)

// The files the host-secrets check needs in the repo.
const (
	secretsModulePath  = "nix/modules/nix-gitops-secrets.nix"
	declaredSecretsNix = "nix/lib/declared-secrets.nix"
)

// hostSecrets returns the names of the secrets each host's Nix config
// declares (nix/lib/declared-secrets.nix, evaluated with the real nix and
// nixpkgs' lib). ok is false, with the reason, when it cannot be known
// here: no nix, or no nixpkgs in the store.
func hostSecrets(ctx context.Context, root, nixpkgs string, hosts []string) (map[string][]string, string, error) {
	nix, err := exec.LookPath("nix-instantiate")
	if err != nil {
		return nil, "nix-instantiate is not installed", nil
	}
	if nixpkgs == "" {
		var why string
		if nixpkgs, why = lockedNixpkgs(ctx, root); nixpkgs == "" {
			return nil, why, nil
		}
	}
	if _, err := os.Stat(filepath.Join(nixpkgs, "lib", "default.nix")); err != nil {
		return nil, "", fmt.Errorf("--nixpkgs %s: no lib/default.nix there; give the folder of a nixpkgs checkout (or of nixpkgs' lib tarball)", nixpkgs)
	}
	list := make([]string, len(hosts))
	for i, h := range hosts {
		list[i] = strconv.Quote(h)
	}
	expr := fmt.Sprintf(`import %s { lib = import %s; modulesDir = %s; hostsDir = %s; hosts = [ %s ]; }`,
		nixPath(filepath.Join(root, declaredSecretsNix)), nixPath(filepath.Join(nixpkgs, "lib")),
		nixPath(filepath.Join(root, "nix", "modules")), nixPath(filepath.Join(root, repo.HostsDir)), strings.Join(list, " "))
	cmd := exec.CommandContext(ctx, nix, "--eval", "--strict", "--json", "-E", expr)
	cmd.Env = append(os.Environ(), "NIX_PATH=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, "", fmt.Errorf("cannot evaluate the hosts' declared secrets (%s): %s", declaredSecretsNix, lastLines(stderr.String()))
	}
	out := map[string][]string{}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, "", fmt.Errorf("cannot read the hosts' declared secrets: %w", err)
	}
	return out, "", nil
}

// nixPath is p as a Nix path expression.
func nixPath(p string) string { return "(/. + " + strconv.Quote(p) + ")" }

// lockedNixpkgs is the store path of the nixpkgs flake.lock pins, if it is
// in the store already (any build or `nix flake archive` puts it there):
// the fixed-output path of its narHash, as Nix computes it, so nothing is
// fetched or copied.
func lockedNixpkgs(ctx context.Context, root string) (string, string) {
	b, err := os.ReadFile(filepath.Join(root, "flake.lock"))
	if err != nil {
		return "", "there is no flake.lock"
	}
	var lock struct {
		Root  string `json:"root"`
		Nodes map[string]struct {
			Inputs map[string]any `json:"inputs"`
			Locked struct {
				NarHash string `json:"narHash"`
			} `json:"locked"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return "", "flake.lock does not parse"
	}
	node, _ := lock.Nodes[lock.Root].Inputs["nixpkgs"].(string)
	hash := lock.Nodes[node].Locked.NarHash
	if hash == "" {
		return "", "flake.lock pins no nixpkgs"
	}
	out, err := exec.CommandContext(ctx, "nix-store", "--print-fixed-path", "--recursive", "sha256", hash, "source").Output()
	if err != nil {
		return "", "nix-store cannot compute the locked nixpkgs' path"
	}
	p := strings.TrimSpace(string(out))
	if _, err := os.Stat(filepath.Join(p, "lib", "default.nix")); err != nil {
		return "", "the nixpkgs flake.lock pins is not in the Nix store yet (`nix flake archive` fetches it)"
	}
	return p, ""
}

func lastLines(s string) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if !strings.HasPrefix(l, "warning: ") {
			keep = append(keep, l)
		}
	}
	if len(keep) > 6 {
		keep = keep[len(keep)-6:]
	}
	return strings.Join(keep, "\n")
}

// secrets checks that every claimed host that declares secrets has a Vault
// role in its claim (and notes claims with a role but nothing to fetch).
func (v *validator) secrets(claims []*repo.Claim, hosts []string) {
	if !exists(filepath.Join(v.root, secretsModulePath)) || !exists(filepath.Join(v.root, declaredSecretsNix)) || len(hosts) == 0 {
		return
	}
	declared, why, err := hostSecrets(context.Background(), v.root, v.opts.Nixpkgs, hosts)
	switch {
	case err != nil:
		v.add(filepath.Join(v.root, repo.HostsDir), "", err.Error())
		return
	case declared == nil:
		v.report.Notes = append(v.report.Notes, "hosts' secrets not checked against their claims' spec.secrets: "+why+"; pass --nixpkgs (a nixpkgs folder) to check them")
		return
	}
	for _, c := range claims {
		names, ok := declared[repo.FlakeAttr(c.Spec)]
		switch {
		case !ok:
		case len(names) > 0 && c.Spec.Secrets == nil:
			v.add(c.Where(), "spec.secrets", fmt.Sprintf("spec.secrets: %s/%s declares secrets (%s) but the claim names no Vault role, so the machine could never log in to fetch them; set spec.secrets.role and spec.secrets.wrappingTokenSecretRef, then run labctl secrets bootstrap %s",
				repo.HostsDir, repo.FlakeAttr(c.Spec), strings.Join(names, ", "), c.Spec.Hostname))
		case len(names) == 0 && c.Spec.Secrets != nil:
			v.report.Notes = append(v.report.Notes, fmt.Sprintf("%s: spec.secrets is set but %s/%s declares no secrets: the machine gets a Vault identity it does not use", v.rel(c.Where()), repo.HostsDir, repo.FlakeAttr(c.Spec)))
		}
	}
}
