// Package gitsource is the agent's side of git: the cheap poll of the
// remote head, the fetch of exactly one ref into the agent's own bare
// clone, the fast-forward check and signature verification. Everything but
// the poll over HTTP(S) runs the real git command-line tool (design D5).
//
// Credentials never reach a process argument or a log line:
//   - an SSH deploy key is passed as GIT_SSH_COMMAND with the key's *path*,
//     a pinned known_hosts and StrictHostKeyChecking=yes, and no ssh config
//     or $HOME is read (systemd gives services no $HOME);
//   - an HTTPS token is read from its file by the agent itself, acting as
//     GIT_ASKPASS (see AskPass), and sent by git in an HTTP header.
package gitsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/config"
	"github.com/homelab-infra/homelab-infra/internal/agent/run"
	"github.com/homelab-infra/homelab-infra/internal/flakeref"
)

// Refs the agent keeps in its clone.
const (
	FetchedRef = "refs/nix-gitops/fetched" // the tracked ref as last fetched
	AppliedRef = "refs/nix-gitops/applied" // the applied commit: keeps it for the fast-forward check
)

// Environment variables of the askpass mode.
const (
	envAskpassToken = "NIX_GITOPS_ASKPASS_TOKEN_FILE"
	envAskpassUser  = "NIX_GITOPS_ASKPASS_USER"
)

// Source fetches one flake ref's branch into a local clone.
type Source struct {
	Ref     flakeref.Ref
	Clone   string // bare repository, e.g. /var/lib/nix-gitops/repo.git
	Auth    config.Auth
	Timeout time.Duration
	// Self is the agent's own executable, used as GIT_ASKPASS.
	Self   string
	Log    *slog.Logger
	Method string // poll method: "auto" or "git"
	// Track is the full name of the ref Head and Fetch follow; empty: the
	// flake ref's own (ref=). A machine in rollout mode tracks its deploy
	// ref (internal/agent/rollout.go).
	Track  string
	poller *httpPoller
}

// Tracked is the full name of the ref Head and Fetch follow.
func (s *Source) Tracked() string {
	if s.Track != "" {
		return s.Track
	}
	return s.Ref.FetchRef()
}

// ErrDenied marks a remote that answered and refused: credentials it does
// not accept, a host key that is not the pinned one, or a repository that
// does not exist for them. Unlike a remote that is not reachable (yet),
// retrying cannot help, so the agent fails at once and says what to check.
var ErrDenied = errors.New("the remote refused access")

// deniedRE matches what git and ssh print (LC_ALL=C) when the remote refuses.
var deniedRE = regexp.MustCompile(`Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|Permission denied \(|Authentication failed|could not read (Username|Password)|requested URL returned error: 40[134]|Repository not found|does not appear to be a git repository`)

// denied wraps err in ErrDenied, with a hint naming the settings to check,
// when git's error says the remote refused.
func (s *Source) denied(err error) error {
	var re *run.Error
	if !errors.As(err, &re) || !deniedRE.MatchString(re.Stderr) {
		return err
	}
	hint := "check the flake ref's URL, auth.tokenFile and auth.tokenUser"
	if s.Ref.Transport == "ssh" {
		hint = "check the flake ref's URL, auth.sshKeyFile and auth.sshKnownHosts"
	}
	return fmt.Errorf("%w (%s): %w", ErrDenied, hint, err)
}

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// Env is the environment of every git child: no system or user git
// config, no prompts, and the credentials wired through files. Only the
// variables the agent sets, for laying over another environment.
func (s *Source) Env() []string {
	extra := []string{"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0", "LC_ALL=C"}
	if s.Auth.SSHKeyFile != "" {
		extra = append(extra, "GIT_SSH_COMMAND="+strings.Join([]string{
			"ssh", "-F", "/dev/null", "-i", shellQuote(s.Auth.SSHKeyFile), "-o", "IdentitiesOnly=yes",
			"-o", "UserKnownHostsFile=" + shellQuote(s.Auth.SSHKnownHosts), "-o", "GlobalKnownHostsFile=/dev/null",
			"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15",
		}, " "))
	} else {
		extra = append(extra, "GIT_SSH_COMMAND=ssh -o BatchMode=yes -o ConnectTimeout=15")
	}
	if s.Auth.TokenFile != "" && s.Self != "" {
		extra = append(extra, AskPassEnv(s.Self, s.Auth.TokenFile, s.Auth.TokenUser)...)
	}
	return extra
}

// AskPassEnv makes git ask self (a program that calls AskPass when
// IsAskPass) for the user and the token file's content: git's
// environment, never an argument or a URL. labctl's rollout steps use it
// too.
func AskPassEnv(self, tokenFile, user string) []string {
	return []string{"GIT_ASKPASS=" + self, envAskpassToken + "=" + tokenFile, envAskpassUser + "=" + user}
}

func (s *Source) env() []string { return run.Environ(s.Env()...) }

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (s *Source) git(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	out, err := run.Output(ctx, run.Cmd{Name: "git", Args: args, Env: s.env(), Timeout: timeout})
	return strings.TrimSpace(string(out)), err
}

// Init creates the bare clone if it does not exist.
func (s *Source) Init(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(s.Clone, "HEAD")); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.Clone), 0o700); err != nil {
		return fmt.Errorf("cannot create clone folder: %w", err)
	}
	if _, err := s.git(ctx, time.Minute, "init", "-q", "--bare", s.Clone); err != nil {
		return fmt.Errorf("cannot create the agent's clone: %w", err)
	}
	return nil
}

// Reachable looks the tracked ref up over a new connection: the health
// gate's "git still reachable" must see what a switch did to name
// resolution, routes or the firewall, and a kept-alive connection from the
// poll before the switch would hide all three (dns01 resolves the git
// server's name itself).
func (s *Source) Reachable(ctx context.Context) error {
	if s.poller != nil {
		s.poller.client.CloseIdleConnections()
	}
	_, err := s.Head(ctx)
	return err
}

// Head looks up the commit the remote's tracked ref points to: the no-op
// poll. Over http(s) with method auto it is one in-process protocol-v2
// ls-refs request (no process started); otherwise `git ls-remote`.
func (s *Source) Head(ctx context.Context) (string, error) {
	ref := s.Tracked()
	found, err := s.Lookup(ctx, ref)
	if err != nil {
		return "", err
	}
	sha, ok := found[ref]
	if !ok {
		return "", fmt.Errorf("the remote has no %s: check ref= in the flake ref", ref)
	}
	return sha, nil
}

// Lookup looks up several refs (full names, or HEAD) in one request: one
// ls-refs round trip over http(s), one `git ls-remote` otherwise. A ref the
// remote lacks is absent from the map; that is not an error.
func (s *Source) Lookup(ctx context.Context, refs ...string) (map[string]string, error) {
	if s.Method != "git" && (s.Ref.Transport == "https" || s.Ref.Transport == "http") {
		if s.poller == nil {
			s.poller = newHTTPPoller(s.Ref, s.Auth)
		}
		found, err := s.poller.lookup(ctx, s.Timeout, refs)
		if !errors.Is(err, errNotV2) {
			return found, err
		}
		s.Log.Debug("remote does not answer protocol v2 ls-refs; polling with git ls-remote", "err", err)
	}
	out, err := s.git(ctx, s.Timeout, append([]string{"ls-remote", "--", s.Ref.Remote}, refs...)...)
	if err != nil {
		return nil, fmt.Errorf("cannot look up %s on the remote: %w", strings.Join(refs, ", "), s.denied(err))
	}
	// ls-remote matches patterns by their tail: keep exact names only.
	found := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		sha, name, ok := strings.Cut(line, "\t")
		if ok && slices.Contains(refs, name) && shaRE.MatchString(sha) {
			found[name] = sha
		}
	}
	return found, nil
}

// Fetch fetches the tracked ref, and only it, into the clone and returns
// the commit fetched.
func (s *Source) Fetch(ctx context.Context) (string, error) {
	return s.FetchInto(ctx, s.Tracked(), FetchedRef)
}

// FetchInto fetches the remote's ref, and only it, into the clone's local
// ref, and returns the commit fetched.
func (s *Source) FetchInto(ctx context.Context, ref, local string) (string, error) {
	if err := s.Init(ctx); err != nil {
		return "", err
	}
	if _, err := s.git(ctx, s.Timeout, "-C", s.Clone, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
		"--", s.Ref.Remote, "+"+ref+":"+local); err != nil {
		return "", fmt.Errorf("cannot fetch %s: %w", ref, s.denied(err))
	}
	sha, err := s.git(ctx, time.Minute, "-C", s.Clone, "rev-parse", "--verify", local+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("cannot resolve the fetched commit: %w", err)
	}
	return sha, nil
}

// IsAncestor reports whether old is an ancestor of (or equal to) new in
// the clone: whether moving from old to new is a fast-forward.
func (s *Source) IsAncestor(ctx context.Context, old, new string) (bool, error) {
	_, err := s.git(ctx, time.Minute, "-C", s.Clone, "merge-base", "--is-ancestor", old, new)
	var re *run.Error
	if errors.As(err, &re) && re.ExitCode() == 1 {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cannot compare %s with %s: %w", short(old), short(new), err)
	}
	return true, nil
}

// RevList lists the commits reachable from head but not from base, oldest
// first: what a fast-forward from base to head brings.
func (s *Source) RevList(ctx context.Context, base, head string) ([]string, error) {
	out, err := s.git(ctx, time.Minute, "-C", s.Clone, "rev-list", "--reverse", base+".."+head)
	if err != nil {
		return nil, fmt.Errorf("cannot list the commits from %s to %s: %w", short(base), short(head), err)
	}
	return strings.Fields(out), nil
}

// Pin points the clone's applied ref at commit, so the commit stays in the
// clone for the next fast-forward check.
func (s *Source) Pin(ctx context.Context, commit string) error {
	if _, err := s.git(ctx, time.Minute, "-C", s.Clone, "update-ref", AppliedRef, commit); err != nil {
		return fmt.Errorf("cannot record the applied commit in the clone: %w", err)
	}
	return nil
}

// BuildURL is the flake URL that builds exactly commit from the clone
// (design D9): a rev on the agent's own clone, never the moving remote ref.
func (s *Source) BuildURL(commit string) string {
	u := "git+file://" + s.Clone + "?ref=" + FetchedRef + "&rev=" + commit
	if s.Ref.Dir != "" {
		u += "&dir=" + s.Ref.Dir
	}
	return u
}

// Verify checks commit's signature against allowedSigners. mode "ssh":
// allowedSigners is git's gpg.ssh.allowedSignersFile. mode "gpg": an
// armoured public key file, imported into a fresh keyring of its own, so the
// machine's or root's keyring never counts. An unsigned commit, a signature
// of the other kind, or a key that is not allowed is an error.
func (s *Source) Verify(ctx context.Context, commit, mode, allowedSigners, scratch string) error {
	raw, err := s.git(ctx, time.Minute, "-C", s.Clone, "cat-file", "commit", commit)
	if err != nil {
		return fmt.Errorf("cannot read commit %s: %w", short(commit), err)
	}
	kind := ""
	header, _, _ := strings.Cut(raw, "\n\n")
	switch {
	case strings.Contains(header, "\ngpgsig -----BEGIN SSH SIGNATURE-----"):
		kind = "ssh"
	case strings.Contains(header, "\ngpgsig -----BEGIN PGP SIGNATURE-----"):
		kind = "gpg"
	case strings.Contains(header, "\ngpgsig "):
		kind = "other"
	}
	if kind == "" {
		return fmt.Errorf("commit %s is not signed, and verify.mode is %q: sign it with a key in %s", short(commit), mode, allowedSigners)
	}
	if kind != mode {
		return fmt.Errorf("commit %s carries a %s signature, but verify.mode is %q", short(commit), kind, mode)
	}
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return fmt.Errorf("cannot create keyring folder: %w", err)
	}
	gnupg, err := os.MkdirTemp(scratch, "gnupg-")
	if err != nil {
		return fmt.Errorf("cannot create keyring folder: %w", err)
	}
	defer os.RemoveAll(gnupg)
	env := append(s.env(), "GNUPGHOME="+gnupg) // the last value of a key wins
	args := []string{"-C", s.Clone}
	if mode == "ssh" {
		args = append(args, "-c", "gpg.ssh.allowedSignersFile="+allowedSigners)
	} else {
		if _, err := run.Output(ctx, run.Cmd{Name: "gpg", Args: []string{"--batch", "--quiet", "--import", allowedSigners}, Env: env, Timeout: time.Minute}); err != nil {
			return fmt.Errorf("cannot import the allowed signers' public keys from %s: %w", allowedSigners, err)
		}
	}
	args = append(args, "verify-commit", commit)
	if _, err := run.Output(ctx, run.Cmd{Name: "git", Args: args, Env: env, Timeout: time.Minute}); err != nil {
		var re *run.Error
		detail := err.Error()
		if errors.As(err, &re) && re.Stderr != "" {
			detail = re.Stderr
		}
		return fmt.Errorf("commit %s is not signed by an allowed key (%s): %s", short(commit), allowedSigners, oneLine(detail))
	}
	return nil
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// IsAskPass reports whether the process was started by git as GIT_ASKPASS.
func IsAskPass() bool { return os.Getenv(envAskpassToken) != "" && len(os.Args) == 2 }

// AskPass answers git's credential prompt: the user name for "Username
// for …", the token file's content for "Password for …". The token goes to
// git on stdout, never into an argument or a log.
func AskPass(prompt string, stdout *os.File) error {
	if strings.HasPrefix(prompt, "Username") {
		_, err := fmt.Fprintln(stdout, os.Getenv(envAskpassUser))
		return err
	}
	b, err := os.ReadFile(os.Getenv(envAskpassToken))
	if err != nil {
		return fmt.Errorf("cannot read the token file: %w", err)
	}
	_, err = stdout.Write(append(bytes.TrimSpace(b), '\n'))
	return err
}
