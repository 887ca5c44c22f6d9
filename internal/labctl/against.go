package labctl

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/homelab-infra/homelab-infra/internal/fluxbuild"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/schemacheck"
)

// Edits are checked before the push: each claim is compared with its
// version in a Git revision (the branch's upstream by default, the commit
// the cluster applies or soon will), and the XRD's transition rules run on
// the pair, as the API server runs them when Flux applies the edit. A
// refused edit fails the whole Flux revision; here it names the file, the
// field and what to do instead (the rule's message).

// pruneAnnotation on an object tells Flux never to prune it.
const pruneAnnotation = "kustomize.toolkit.fluxcd.io/prune"

// edits checks the claims (as read from the working tree) against their
// versions in the revision opts.Against.
func (v *validator) edits(ctx context.Context, claims []*repo.Claim, schema *schemacheck.Validator) {
	rev := v.opts.Against
	if rev == "none" || schema == nil {
		return
	}
	explicit := rev != ""
	if !explicit {
		rev = "@{upstream}"
	}
	sha, err := git(v.root, "rev-parse", "--verify", "--quiet", rev+"^{commit}")
	if err != nil {
		if explicit {
			v.add("--against "+rev, "", fmt.Sprintf("is not a commit of the repository at %s; name a branch, tag or commit (e.g. origin/main), or none", v.root))
		} else {
			v.report.Notes = append(v.report.Notes, "edits not checked against a revision: the branch has no upstream (give --against REV, e.g. origin/main)")
		}
		return
	}
	old, err := claimsAt(v.root, sha)
	if err != nil {
		v.report.Notes = append(v.report.Notes, fmt.Sprintf("edits not checked against %s: %v", rev, err))
		return
	}
	v.report.Against = rev
	before := map[string]repo.Doc{}
	for _, d := range old {
		if repo.IsClaim(d) {
			before[identity(d)] = d
		}
	}
	for _, c := range claims {
		o, ok := before[identity(c.Doc)]
		if !ok {
			continue
		}
		for _, e := range schema.TransitionErrors(ctx, c.Object, o.Object) {
			if strings.HasPrefix(e.Field, "spec.bootstrap.sshAuthorizedKeys") {
				e.BadValue = "(value not shown)"
			}
			v.add(c.Where(), e.Field, fmt.Sprintf("%s (an edit of the claim in %s; the API server refuses it, and Flux the whole revision)", e.Error(), rev))
		}
	}
	v.prunedNamespaces(old, claims, rev)
}

// prunedNamespaces refuses a change that removes from what Flux applies a
// Namespace that live claims are in: Flux's prune would delete it, and
// Kubernetes every claim in it, and Crossplane every VM.
func (v *validator) prunedNamespaces(old []repo.Doc, claims []*repo.Claim, rev string) {
	members := map[string][]string{}
	for _, d := range old {
		if repo.IsClaim(d) {
			md, _ := d.Object["metadata"].(map[string]any)
			ns, _ := md["namespace"].(string)
			name, _ := md["name"].(string)
			members[ns] = append(members[ns], name)
		}
	}
	for _, c := range claims {
		members[c.Namespace] = append(members[c.Namespace], c.Name)
	}
	for _, d := range old {
		if a, k := d.Kind(); a != "v1" || k != "Namespace" {
			continue
		}
		md, _ := d.Object["metadata"].(map[string]any)
		name, _ := md["name"].(string)
		ann, _ := md["annotations"].(map[string]any)
		if v.namespaces[name] || ann[pruneAnnotation] == "disabled" || len(members[name]) == 0 {
			continue
		}
		names := unique(members[name])
		v.add(filepath.Join(v.root, repo.ClaimsDir), "", fmt.Sprintf("Namespace %s, which %s applies, is gone from what Flux applies: Flux's prune would delete it, and with it the claims in it (%s) and their VMs. Keep its Namespace in %s (namespace.yaml), or annotate it %s: disabled first",
			name, rev, strings.Join(names, ", "), repo.ClaimsDir, pruneAnnotation))
	}
}

func unique(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// identity is how Flux and the API server tell claims apart.
func identity(d repo.Doc) string {
	md, _ := d.Object["metadata"].(map[string]any)
	ns, _ := md["namespace"].(string)
	name, _ := md["name"].(string)
	return ns + "/" + name
}

// claimsAt is what Flux applied from the claims folder at commit sha: the
// folder is read from Git (git archive) into a temporary folder and built
// as the working tree's is.
func claimsAt(root, sha string) ([]repo.Doc, error) {
	if _, err := git(root, "rev-parse", "--verify", "--quiet", sha+":"+repo.ClaimsDir); err != nil {
		return nil, nil // no claims folder then: nothing to compare
	}
	cmd := exec.Command("git", "-C", root, "archive", "--format=tar", sha, repo.ClaimsDir)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("cannot read %s at %s: %v: %s", repo.ClaimsDir, sha, err, strings.TrimSpace(errOut.String()))
	}
	tmp, err := os.MkdirTemp("", "labctl-against-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := untar(&out, tmp); err != nil {
		return nil, fmt.Errorf("cannot unpack %s at %s: %w", repo.ClaimsDir, sha, err)
	}
	objs, errs := fluxbuild.Build(filepath.Join(tmp, repo.ClaimsDir))
	if len(errs) > 0 {
		return nil, fmt.Errorf("Flux could not build %s at %s either: %v", repo.ClaimsDir, sha, errs[0].Err)
	}
	return docsOf(objs), nil
}

func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			return fmt.Errorf("%s: a path outside the folder", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				return err
			}
		}
	}
}

// git runs git in the repository and returns its trimmed output.
func git(root string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", root}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return strings.TrimSpace(out.String()), nil
}
