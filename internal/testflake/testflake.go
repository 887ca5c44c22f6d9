// Package testflake writes the stand-in NixOS flake that the agent tests and
// the VM test converge to. It is the one fake on the Nix side, named as such
// in every test that uses it: NixOS itself (nixpkgs) cannot be built offline,
// so each host's nixosConfigurations.<host>.config.system.build.toplevel is
// a builtins.derivation with builder /bin/sh that produces what the agent
// touches of a real toplevel:
//
//	$out/bin/switch-to-configuration  records each call in RecordDir and can
//	                                  be told to fail or to sleep
//	$out/kernel, $out/initrd          files whose content decides boot vs switch
//	$out/version                      the Spec's Version
//	$out/etc/nix-gitops/secrets.json  the Spec's Secrets declarations, if any
//
// Everything the builder and the switch script run is /bin/sh builtins or
// coreutils by absolute path (/bin/mkdir, /bin/cat, /bin/chmod, /bin/mv,
// /bin/sleep), so the flake builds with Nix 2.8 here and Nix 2.26 in a
// Debian trixie guest, with sandbox = false (or /bin and /lib made visible
// to the sandbox): see NixConf.
//
// The flake lives in a git work tree and is pushed to a bare repository,
// which is what the agent follows (file://, or served over HTTP by
// HTTPHandler).
package testflake

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// The stand-in's two scripts are files, not Go strings, so the NixOS VM test
// (nix/tests/agent.nix) reads the very same files from the flake's source.
var (
	//go:embed builder.sh
	builderScript string
	//go:embed switch.sh
	switchScript string
)

// NixConf is the nix.conf for tests (design.md §4): no sandbox, flakes on,
// no substituters. build-users-group is empty because a test machine has no
// nixbld group; root then builds as root. Pass it as NIX_CONFIG.
const NixConf = "sandbox = false\nexperimental-features = nix-command flakes\nsubstituters =\nbuild-users-group =\n"

// System is what one host's stand-in toplevel looks like and does.
type System struct {
	// Version is any text; a different Version gives a different toplevel.
	Version string
	// Kernel and Initrd are the contents of $out/kernel and $out/initrd. A
	// change against the booted system is a kernel change (boot vs switch).
	Kernel, Initrd string
	// SwitchExit is switch-to-configuration's exit code (0: success).
	SwitchExit int
	// SwitchSleep makes switch-to-configuration sleep this many seconds
	// after recording the call and before acting (to kill the agent then).
	SwitchSleep int
	// BuildFail makes the derivation's builder fail.
	BuildFail bool
	// BuildSleep makes the builder sleep this many seconds first.
	BuildSleep int
	// BuildRelease, when set, makes the builder wait until this file
	// exists, for BuildSleep seconds at most, instead of sleeping them
	// through: a test that must see things happen during a build ends it
	// when it has seen them, not after a sleep long enough for its
	// slowest run (sandbox = false lets the builder see the file). Not in
	// guest mode.
	BuildRelease string
	// EvalError makes the toplevel attribute throw at evaluation.
	EvalError bool
	// Secrets is the content of $out/etc/nix-gitops/secrets.json: the
	// secrets this system declares (internal/agent/secrets), "" for none.
	Secrets string
	// NeedFiles are files a switch (or test) requires, readable and not
	// empty, as a service that reads its secret at start would: a missing
	// one fails the switch, naming it.
	NeedFiles []string
	// Degrade makes a successful switch (or test) leave the machine
	// degraded, so a health gate that asks systemd fails after a switch
	// that succeeded: it starts the transient unit testflake-degraded.service
	// running /bin/false. Every other generation's switch clears that unit
	// (reset-failed), as a real switch stops the units its configuration
	// lacks. Only where systemd is PID 1 (the VM test); elsewhere a no-op.
	// In guest mode (Options.Guest) it is a unit of the system that fails
	// when the switch starts it.
	Degrade bool
	// EvalSlow makes evaluation take a while (this many thousand hashes),
	// so a test can kill nix during it.
	EvalSlow int
	// Inhibitors are the system's switch inhibitors (NixOS 26.05
	// system.switch.inhibitors), written to $out/switch-inhibitors.
	Inhibitors map[string]string
	// KernelParams is $out/kernel-params (the kernel command line).
	KernelParams string

	// Guest mode only (see Guest).

	// AgentVersion names the system's agent package: a new one is a new
	// store path, so the agent's units get a new ExecStart [1].
	AgentVersion string
	// AgentConfig is the system's /etc/nix-gitops/config.json.
	AgentConfig map[string]any
	// HealthScript is the body of /etc/testflake/health [exit 0]: point
	// health.script at it, and the gate after a switch runs the new
	// system's script.
	HealthScript string
	// InitInterface is $out/init-interface-version [systemd].
	InitInterface string
	// Units are extra units by name; Wanted are linked from
	// multi-user.target.wants (the switch starts them).
	Units  map[string]string
	Wanted []string
	// ActivateSleep makes the activation sleep this many seconds after /etc
	// is switched over and before /run/current-system moves (while
	// /run/testflake/activating exists), so a test can stop things then.
	ActivateSleep int
	// ActivateExtra is shell the activation runs (the system's activation
	// snippets).
	ActivateExtra string
	// SystemdFiles, when set, are the system's etc/systemd/system as its
	// NixOS modules make it (internal/nixcheck's Tree): unit files and
	// drop-ins by path, instead of the agent's own units as `nix-gitops
	// units` writes them; SystemdLinks are its .wants links, by path, to
	// their targets. "@agent@" in a file stands for the system's agent
	// package, as a store path of NixOS's would.
	SystemdFiles, SystemdLinks map[string]string
	// Etc are more files of the system's etc tree, by path
	// (environment.etc), such as nix-gitops/secrets.json.
	Etc map[string]string
}

// Spec is one commit's flake: a System per host.
type Spec struct {
	Hosts map[string]System
	// Inputs are flake inputs (name → URL, flake = false) the flake takes
	// but does not use: nix fetches them at evaluation.
	Inputs map[string]string
}

// Options configure a Repo.
type Options struct {
	// RecordDir is where switch-to-configuration records its calls. It is
	// baked into the toplevel, so it is a path on the machine that runs the
	// switch (for the VM test: a path in the guest).
	RecordDir string
	// RecordPerHost gives each host's switch its own folder,
	// RecordDir/<host>, so agents of several hosts can run side by side
	// (the rollout suite).
	RecordPerHost bool
	// Branch is the branch commits go to [main].
	Branch string
	// Subdir puts the flake in a folder of the repository (flake ref dir=).
	Subdir string
	// NixSystem is the derivation's system [from runtime.GOARCH].
	NixSystem string
	// Guest, when set, makes every toplevel NixOS-shaped for a guest with
	// the activation stand-in, internal/stcstandin (see Guest); RecordDir is then
	// unused.
	Guest *Guest
}

// CommitOptions sign a commit.
type CommitOptions struct {
	// Message is the commit message [testflake: <versions>].
	Message string
	// SSHSigningKey signs the commit with this SSH private key file.
	SSHSigningKey string
	// GPGKey signs with this GPG key id from GPGHome.
	GPGKey, GPGHome string
	// Lock runs `nix flake lock` before the commit, with these variables
	// added to the environment (a flake with Spec.Inputs needs a lock
	// file, as a real repository has one); nil: no lock file.
	Lock []string
}

// Repo is a work tree plus the bare repository it pushes to.
type Repo struct {
	Work, Bare string
	Options
}

// New creates dir/work (the work tree) and dir/remote.git (the bare
// repository that plays the git server). RecordDir is created when it is
// a local path.
func New(dir string, o Options) (*Repo, error) {
	if o.Guest == nil && (o.RecordDir == "" || !filepath.IsAbs(o.RecordDir)) {
		return nil, fmt.Errorf("testflake: RecordDir %q must be an absolute path", o.RecordDir)
	}
	if o.Branch == "" {
		o.Branch = "main"
	}
	if o.NixSystem == "" {
		o.NixSystem = map[string]string{"amd64": "x86_64-linux", "arm64": "aarch64-linux"}[runtime.GOARCH]
	}
	r := &Repo{Work: filepath.Join(dir, "work"), Bare: filepath.Join(dir, "remote.git"), Options: o}
	if err := os.MkdirAll(r.Work, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create work tree: %w", err)
	}
	if o.Guest == nil {
		if err := os.MkdirAll(o.RecordDir, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create record folder: %w", err)
		}
	}
	if _, err := Git(r.Work, nil, "init", "-q", "-b", o.Branch); err != nil {
		return nil, err
	}
	if _, err := Git(dir, nil, "init", "-q", "--bare", "-b", o.Branch, r.Bare); err != nil {
		return nil, err
	}
	return r, nil
}

// recordDir is where host's switch records.
func (r *Repo) recordDir(host string) string {
	if r.RecordPerHost {
		return filepath.Join(r.RecordDir, host)
	}
	return r.RecordDir
}

// URL is the file:// URL of the bare repository.
func (r *Repo) URL() string { return "file://" + r.Bare }

// FlakeRef is the ref an agent follows for host over the given remote URL
// (use URL() for file://).
func (r *Repo) FlakeRef(remote, host string) string {
	s := "git+" + remote + "?ref=" + r.Branch
	if r.Subdir != "" {
		s += "&dir=" + r.Subdir
	}
	return s + "#" + host
}

// Commit writes spec into the work tree, commits it and pushes the branch
// to the bare repository. It returns the commit id.
func (r *Repo) Commit(spec Spec, co CommitOptions) (string, error) {
	dir := filepath.Join(r.Work, r.Subdir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cannot create flake folder: %w", err)
	}
	flake, err := r.render(spec)
	if err != nil {
		return "", err
	}
	files := map[string]string{"flake.nix": flake, "builder.sh": builderScript, "switch.sh": switchScript}
	if r.Guest != nil {
		if files, err = guestFiles(); err != nil {
			return "", err
		}
		files["flake.nix"] = flake
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return "", fmt.Errorf("cannot write %s: %w", name, err)
		}
	}
	if _, err := Git(r.Work, nil, "add", "-A"); err != nil {
		return "", err
	}
	if co.Lock != nil {
		lock := exec.Command("nix", "--extra-experimental-features", "nix-command flakes", "flake", "lock")
		lock.Dir = dir
		lock.Env = append(append(os.Environ(), GitEnv()...), co.Lock...)
		if out, err := lock.CombinedOutput(); err != nil {
			return "", fmt.Errorf("cannot lock the flake: %w: %s", err, out)
		}
		if _, err := Git(r.Work, nil, "add", "-A"); err != nil {
			return "", err
		}
	}
	msg := co.Message
	if msg == "" {
		var v []string
		for _, h := range sortedHosts(spec) {
			v = append(v, h+"="+spec.Hosts[h].Version)
		}
		msg = "testflake: " + strings.Join(v, " ")
	}
	args := []string{"commit", "-q", "--allow-empty", "-m", msg}
	var env []string
	switch {
	case co.SSHSigningKey != "":
		args = append([]string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + co.SSHSigningKey}, append(args, "-S")...)
	case co.GPGKey != "":
		args = append([]string{"-c", "gpg.format=openpgp", "-c", "user.signingkey=" + co.GPGKey}, append(args, "-S")...)
		env = append(env, "GNUPGHOME="+co.GPGHome)
	}
	if _, err := Git(r.Work, env, args...); err != nil {
		return "", err
	}
	sha, err := Git(r.Work, nil, "rev-parse", "HEAD")
	if err != nil {
		return "", err
	}
	return sha, r.push(false)
}

// Reset moves the branch back to commit (in the work tree and, by a
// force-push, in the bare repository): a force-push or downgrade.
func (r *Repo) Reset(commit string) error {
	if _, err := Git(r.Work, nil, "reset", "-q", "--hard", commit); err != nil {
		return err
	}
	return r.push(true)
}

func (r *Repo) push(force bool) error {
	args := []string{"push", "-q", r.Bare, "HEAD:refs/heads/" + r.Branch}
	if force {
		args = append(args, "--force")
	}
	_, err := Git(r.Work, nil, args...)
	return err
}

// Git runs git in dir with a config of its own (no global or system
// config, a fixed identity) and returns its trimmed output.
func Git(dir string, env []string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), GitEnv()...)
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("cannot run git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// GitEnv isolates git from the machine's and the user's configuration.
func GitEnv() []string {
	return []string{
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=testflake", "GIT_AUTHOR_EMAIL=testflake@example.invalid",
		"GIT_COMMITTER_NAME=testflake", "GIT_COMMITTER_EMAIL=testflake@example.invalid",
	}
}
