// git.go: the driver's side of Git, with the real git command-line tool: a
// local repository into which the remote's main, deploy/* and reboot/* refs
// are fetched (under refs/rollout/, so an operator's own branches are never
// touched), read at a commit, and pushed to as plain fast-forwards.

package rollout

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"
)

// Ref prefixes on the remote.
const (
	DeployPrefix = "refs/heads/deploy/"
	RebootPrefix = "refs/heads/reboot/"
	mirror       = "refs/rollout/"
)

// Git is a local repository and the remote whose refs the driver moves.
type Git struct {
	Dir    string // a repository (a checkout or a bare one)
	Remote string // URL or remote name
	Branch string // the branch reviewed commits are on [main]
	// Env is added to git's environment (credentials: a token through
	// GIT_ASKPASS, never in an argument).
	Env []string
}

func (g *Git) branch() string {
	if g.Branch == "" {
		return "main"
	}
	return g.Branch
}

func (g *Git) git(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", g.Dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	cmd.Env = append(cmd.Env, g.Env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", &gitError{args: args, err: err, stderr: strings.TrimSpace(errb.String())}
	}
	return strings.TrimSpace(out.String()), nil
}

type gitError struct {
	args   []string
	err    error
	stderr string
}

func (e *gitError) Error() string {
	return fmt.Sprintf("git %s: %v: %s", strings.Join(e.args, " "), e.err, e.stderr)
}

func (e *gitError) exit() int {
	var ee *exec.ExitError
	if errors.As(e.err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// Fetch mirrors the remote's branch, deploy/* and reboot/* refs, pruning
// mirrors of refs the remote no longer has. An empty folder (a workflow
// step's) becomes a bare repository first.
func (g *Git) Fetch(ctx context.Context) error {
	if _, err := g.git(ctx, "rev-parse", "--git-dir"); err != nil {
		if _, err := g.git(ctx, "init", "--quiet", "--bare"); err != nil {
			return fmt.Errorf("cannot make a repository in %s: %w", g.Dir, err)
		}
	}
	_, err := g.git(ctx, "fetch", "--quiet", "--prune", "--no-tags", g.Remote,
		"+refs/heads/"+g.branch()+":"+mirror+"branch",
		"+"+DeployPrefix+"*:"+mirror+"deploy/*",
		"+"+RebootPrefix+"*:"+mirror+"reboot/*")
	if err != nil {
		return fmt.Errorf("cannot fetch %s, deploy/* and reboot/* from %s: %w", g.branch(), g.Remote, err)
	}
	return nil
}

// Main is the branch's commit as last fetched.
func (g *Git) Main(ctx context.Context) (string, error) { return g.Resolve(ctx, mirror+"branch") }

// Resolve turns a revision into a full commit id.
func (g *Git) Resolve(ctx context.Context, rev string) (string, error) {
	sha, err := g.git(ctx, "rev-parse", "--verify", "--quiet", rev+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("cannot resolve %q to a commit: %w", rev, err)
	}
	return sha, nil
}

// Refs are the mirrored deploy or reboot refs by host (kind "deploy" or
// "reboot").
func (g *Git) Refs(ctx context.Context, kind string) (map[string]string, error) {
	out, err := g.git(ctx, "for-each-ref", "--format=%(objectname) %(refname)", mirror+kind+"/")
	if err != nil {
		return nil, err
	}
	refs := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		sha, name, ok := strings.Cut(line, " ")
		if ok {
			refs[strings.TrimPrefix(name, mirror+kind+"/")] = sha
		}
	}
	return refs, nil
}

// IsAncestor reports whether a is b or one of its ancestors.
func (g *Git) IsAncestor(ctx context.Context, a, b string) (bool, error) {
	_, err := g.git(ctx, "merge-base", "--is-ancestor", a, b)
	var ge *gitError
	if errors.As(err, &ge) && ge.exit() == 1 {
		return false, nil
	}
	return err == nil, err
}

// Changed lists the paths that differ between two commits.
func (g *Git) Changed(ctx context.Context, from, to string) ([]string, error) {
	out, err := g.git(ctx, "diff", "--name-only", "--no-renames", from, to)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// Files reads the files under the given paths (folders or files) at commit:
// path → content. A path that does not exist there is left out.
func (g *Git) Files(ctx context.Context, commit string, paths ...string) (map[string][]byte, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", g.Dir, "archive", "--format=tar", commit, "--"}, paths...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		// git archive refuses a path that matches nothing: read them one by one.
		if len(paths) > 1 {
			files := map[string][]byte{}
			for _, p := range paths {
				f, err := g.Files(ctx, commit, p)
				if err != nil {
					return nil, err
				}
				for k, v := range f {
					files[k] = v
				}
			}
			return files, nil
		}
		if strings.Contains(errb.String(), "did not match any files") {
			return map[string][]byte{}, nil
		}
		return nil, fmt.Errorf("cannot read %s at %s: %v: %s", strings.Join(paths, ", "), commit, err, errb.String())
	}
	files := map[string][]byte{}
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read git archive of %s: %w", commit, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		files[path.Clean(h.Name)] = b
	}
}

// Advance moves the remote's ref (deploy or reboot, for host) to commit, as a
// plain push: the remote itself refuses anything but a fast-forward (no
// --force is ever given), and the driver checked before that commit is on
// the branch and descends from where the ref was.
func (g *Git) Advance(ctx context.Context, kind, host, commit string) error {
	ref := "refs/heads/" + kind + "/" + host
	if _, err := g.git(ctx, "push", "--quiet", "--porcelain", g.Remote, commit+":"+ref); err != nil {
		return fmt.Errorf("cannot move %s to %s: %w", ref, short(commit), err)
	}
	_, err := g.git(ctx, "update-ref", mirror+kind+"/"+host, commit)
	return err
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
