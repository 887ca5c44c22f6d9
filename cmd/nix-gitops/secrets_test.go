package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// traced runs `nix-gitops apply` under the real strace, recording every
// execve of the agent and all its descendants with full argv and
// environment: exactly what /proc/<pid>/cmdline and environ of each child
// held. It returns the exit code, the agent's stderr (its logs) and the
// trace.
func (l *lab) traced(args ...string) (int, string, string) {
	l.t.Helper()
	st := testenv.LookPath(l.t, "strace")
	trace := filepath.Join(l.dir, "execve.trace")
	inner := l.cmd(append([]string{"apply"}, args...)...)
	cmd := exec.Command(st, append([]string{"-f", "-qq", "-v", "-s", "65536", "-e", "trace=execve", "-o", trace}, inner.Args...)...)
	cmd.Env = inner.Env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	code := testenv.ExitCode(l.t, cmd.Run())
	b, rerr := os.ReadFile(trace)
	if rerr != nil {
		l.t.Fatal(rerr)
	}
	l.t.Logf("traced apply → %d\n%s", code, stderr.String())
	return code, stderr.String(), string(b)
}

// assertHidden fails when any secret appears in the trace or the logs,
// and checks the trace did see the children it must have seen (so an
// empty trace cannot pass).
func assertHidden(t *testing.T, what, stderr, trace string, secrets []string, mustSee []string) {
	t.Helper()
	for _, s := range mustSee {
		if !strings.Contains(trace, s) {
			t.Errorf("%s: the execve trace has no %q: it did not see the children", what, s)
		}
	}
	for _, s := range secrets {
		if strings.Contains(trace, s) {
			for _, line := range strings.Split(trace, "\n") {
				if strings.Contains(line, s) {
					t.Errorf("%s: a secret is in a child's argv or environment: %.300s", what, line)
					break
				}
			}
		}
		if strings.Contains(stderr, s) {
			t.Errorf("%s: a secret is in the logs", what)
		}
	}
}

// TestSecretsStayHidden: the HTTPS token (read from a file, handed to git
// through the agent acting as GIT_ASKPASS) and the SSH deploy key (passed
// by path in GIT_SSH_COMMAND, with a pinned known_hosts) never appear in
// any child's argv or environment, nor in the logs, while real git fetches
// with them from a real git http-backend (token required) and a real sshd
// (key required) on loopback. Fake: the stand-in toplevel.
func TestSecretsStayHidden(t *testing.T) {
	t.Run("HTTPSToken", func(t *testing.T) {
		l := newLab(t)
		c1 := l.commit(testflake.System{Version: "1"})
		tok := make([]byte, 16)
		_, _ = rand.Read(tok)
		token := "tok" + hex.EncodeToString(tok)
		srv := httptest.NewServer(&testflake.Server{Root: filepath.Dir(l.repo.Bare), Token: token})
		defer srv.Close()
		tokenFile := filepath.Join(l.dir, "token")
		if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		l.cfg["flake"] = l.repo.FlakeRef(srv.URL+"/remote.git", "h1")

		// Without the token the remote refuses, and says what to fix, at
		// once: a refusal is not retried like an unreachable remote.
		r := l.apply(21)
		if !strings.Contains(r.stderr, "check auth.tokenFile") || strings.Contains(r.stderr, "retrying") {
			t.Errorf("a refused token must point at auth.tokenFile, with no retry:\n%s", r.stderr)
		}
		l.cfg["auth"] = map[string]any{"tokenFile": tokenFile}
		// poll.method git makes the poll spawn git too (auto polls in process).
		for _, method := range []string{"git", "auto"} {
			l.cfg["poll"] = map[string]any{"method": method}
			if method == "auto" {
				l.commit(testflake.System{Version: "2"})
			}
			code, stderr, trace := l.traced()
			if code != 0 {
				t.Fatalf("poll %s: apply with the token: exit %d", method, code)
			}
			assertHidden(t, "HTTPS token, poll "+method, stderr, trace, []string{token},
				[]string{`"fetch", "--quiet"`, "git-remote-http", `"Password for`})
		}
		if s := l.status(); s.Applied == nil || s.Applied.Commit == c1 {
			t.Errorf("the second commit was not applied over HTTPS with the token: %+v", s.Last)
		}
	})

	t.Run("SSHDeployKey", func(t *testing.T) {
		l := newLab(t)
		sshd := testenv.LookPath(t, "/usr/sbin/sshd")
		keygen := testenv.LookPath(t, "ssh-keygen")
		testenv.LookPath(t, "ssh")
		gen := func(name string) string {
			p := filepath.Join(l.dir, name)
			if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen: %v\n%s", err, out)
			}
			return p
		}
		hostKey, otherHost, deployKey := gen("host_key"), gen("other_host_key"), gen("deploy_key")
		pub := func(p string) string {
			b, err := os.ReadFile(p + ".pub")
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(b))
		}
		if err := os.WriteFile(filepath.Join(l.dir, "authorized_keys"), []byte(pub(deployKey)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		addr := freeAddr(t)
		host, port, _ := strings.Cut(addr, ":")
		cfg := fmt.Sprintf("ListenAddress %s\nPort %s\nHostKey %s\nPidFile %s\nAuthorizedKeysFile %s\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nLogLevel VERBOSE\n",
			host, port, hostKey, filepath.Join(l.dir, "sshd.pid"), filepath.Join(l.dir, "authorized_keys"))
		cfgPath := filepath.Join(l.dir, "sshd_config")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // sshd's privilege-separation folder
			t.Fatal(err)
		}
		var sshdLog bytes.Buffer
		d := exec.Command(sshd, "-D", "-e", "-f", cfgPath)
		d.Stderr = &sshdLog
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Process.Kill(); _ = d.Wait(); t.Logf("sshd:\n%s", sshdLog.String()) })
		waitFor(t, "sshd to listen", 10*time.Second, func() bool { return strings.Contains(sshdLog.String(), "listening on") })

		knownHosts := filepath.Join(l.dir, "known_hosts")
		wrongHosts := filepath.Join(l.dir, "wrong_known_hosts")
		if err := os.WriteFile(knownHosts, []byte(fmt.Sprintf("[%s]:%s %s\n", host, port, pub(hostKey))), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(wrongHosts, []byte(fmt.Sprintf("[%s]:%s %s\n", host, port, pub(otherHost))), 0o644); err != nil {
			t.Fatal(err)
		}
		l.commit(testflake.System{Version: "1"})
		l.cfg["flake"] = l.repo.FlakeRef(fmt.Sprintf("ssh://root@%s:%s%s", host, port, l.repo.Bare), "h1")

		// A server whose host key is not the pinned one is refused.
		l.cfg["auth"] = map[string]any{"sshKeyFile": deployKey, "sshKnownHosts": wrongHosts}
		r := l.apply(21)
		if !strings.Contains(r.stderr, "Host key verification failed") && !strings.Contains(r.stderr, "REMOTE HOST IDENTIFICATION HAS CHANGED") {
			t.Errorf("a host key that is not pinned must fail the fetch:\n%s", r.stderr)
		}
		if !strings.Contains(r.stderr, "auth.sshKnownHosts") || strings.Contains(r.stderr, "retrying") {
			t.Errorf("a refused host key must point at auth.sshKnownHosts, with no retry:\n%s", r.stderr)
		}

		l.cfg["auth"] = map[string]any{"sshKeyFile": deployKey, "sshKnownHosts": knownHosts}
		// No $HOME: systemd gives services none.
		var env []string
		for _, e := range l.env {
			if !strings.HasPrefix(e, "HOME=") {
				env = append(env, e)
			}
		}
		l.env = env
		code, stderr, trace := l.traced()
		if code != 0 {
			t.Fatalf("apply with the deploy key: exit %d", code)
		}
		keyBytes, err := os.ReadFile(deployKey)
		if err != nil {
			t.Fatal(err)
		}
		var secrets []string
		for _, line := range strings.Split(string(keyBytes), "\n") {
			if len(line) > 20 && !strings.HasPrefix(line, "-----") {
				secrets = append(secrets, line) // every base64 line of the private key
			}
		}
		assertHidden(t, "SSH deploy key", stderr, trace, secrets,
			[]string{`"ssh"`, "StrictHostKeyChecking=yes", "git-upload-pack", `"fetch", "--quiet"`})
		if s := l.status(); s.Last.Outcome != "applied" {
			t.Errorf("not applied over ssh: %+v", s.Last)
		}

		tok := make([]byte, 16)
		_, _ = rand.Read(tok)
		// A private input on the same server: nix's own git fetches it with
		// the agent's deploy key and pinned host key, which it could not
		// find alone (no $HOME, no ssh config), and the key stays hidden.
		priv := filepath.Join(l.dir, "private")
		if _, err := testflake.Git(l.dir, nil, "init", "-q", "-b", "master", priv); err != nil {
			t.Fatal(err)
		}
		// Content of its own, so its store path is new to this store.
		if err := os.WriteFile(filepath.Join(priv, "secret-sauce"), []byte(hex.EncodeToString(tok)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := testflake.Git(priv, nil, "add", "-A"); err != nil {
			t.Fatal(err)
		}
		if _, err := testflake.Git(priv, nil, "commit", "-q", "-m", "private input"); err != nil {
			t.Fatal(err)
		}
		input := fmt.Sprintf("git+ssh://root@%s:%s%s?ref=master", host, port, priv)
		lockEnv := []string{"NIX_CONFIG=" + testflake.NixConf, "XDG_CACHE_HOME=" + filepath.Join(l.dir, "lock-cache"),
			fmt.Sprintf("GIT_SSH_COMMAND=ssh -F /dev/null -i %s -o IdentitiesOnly=yes -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes", deployKey, knownHosts)}
		if _, err := l.repo.Commit(testflake.Spec{Hosts: map[string]testflake.System{"h1": {Version: "2"}}, Inputs: map[string]string{"private": input}}, testflake.CommitOptions{Lock: lockEnv}); err != nil {
			t.Fatal(err)
		}
		// Locking fetched the input into the store; remove it, so the
		// agent's nix must fetch it again itself.
		lockFile, err := os.ReadFile(filepath.Join(l.repo.Work, "flake.lock"))
		if err != nil {
			t.Fatal(err)
		}
		var lock struct {
			Nodes map[string]struct {
				Locked map[string]any `json:"locked"`
			} `json:"nodes"`
		}
		if err := json.Unmarshal(lockFile, &lock); err != nil {
			t.Fatal(err)
		}
		locked := lock.Nodes["private"].Locked
		expr := fmt.Sprintf(`(builtins.fetchTree { type = "git"; url = "file://%s"; rev = "%s"; narHash = "%s"; }).outPath`, priv, locked["rev"], locked["narHash"])
		cmd := exec.Command("nix", "--extra-experimental-features", "nix-command flakes", "eval", "--raw", "--impure", "--expr", expr)
		cmd.Env = lockEnv
		storePath, err := cmd.Output()
		if err != nil {
			t.Fatalf("cannot find the input's store path: %v", err)
		}
		if out, err := exec.Command("nix-store", "--delete", string(storePath)).CombinedOutput(); err != nil {
			t.Fatalf("nix-store --delete %s: %v\n%s", storePath, err, out)
		}
		code, stderr, trace = l.traced()
		if code != 0 {
			t.Fatalf("apply of a flake with a private input over ssh: exit %d\n%s", code, stderr)
		}
		if os.Getenv("DEBUG_TRACE") != "" {
			t.Logf("TRACE:\n%s", trace)
		}
		assertHidden(t, "SSH deploy key, private input", stderr, trace, secrets, []string{`"nix", "--extra-experimental-features"`, priv})
	})
}
