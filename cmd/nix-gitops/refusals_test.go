package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// refused checks that the last apply was a refusal that left the system
// as it was.
func (l *lab) refused(reason, commit, errMsg string, wantApplied string) {
	l.t.Helper()
	calls := len(l.calls())
	profile := l.profileTarget()
	l.apply(21)
	s := l.status()
	if s.Last.Outcome != "refused" || s.Last.Commit != commit || !strings.Contains(s.Last.Error, errMsg) {
		l.t.Errorf("%s: last run %+v, want refused %s with %q", reason, s.Last, commit, errMsg)
	}
	if s.Applied.Commit != wantApplied || l.profileTarget() != profile || len(l.calls()) != calls {
		l.t.Errorf("%s: the system moved: applied %s, profile %q (was %q), calls %d (were %d)", reason, s.Applied.Commit, l.profileTarget(), profile, len(l.calls()), calls)
	}
}

// TestRefuseNonFastForward: a downgrade (the branch moved back to an
// ancestor) and a force-push (a commit that does not descend from the
// applied one) are refused and leave the system untouched, unless
// --allow-non-fast-forward is given. Fake: the stand-in toplevel.
func TestRefuseNonFastForward(t *testing.T) {
	l := newLab(t)
	c1 := l.commit(testflake.System{Version: "1"})
	l.apply(0)
	c2 := l.commit(testflake.System{Version: "2"})
	l.apply(0)

	if err := l.repo.Reset(c1); err != nil {
		t.Fatal(err)
	}
	l.refused("downgrade to an ancestor", c1, "does not descend from the applied commit", c2)

	forced := l.commit(testflake.System{Version: "2-rewritten"}) // on top of c1: c2 is gone
	l.refused("force-push", forced, "does not descend", c2)
	if m := l.metrics(); m[`nix_gitops_failures_total{stage=refuse}`] != 2 {
		t.Errorf("failures_total{stage=refuse} = %v, want 2", m[`nix_gitops_failures_total{stage=refuse}`])
	}

	l.apply(0, "--allow-non-fast-forward")
	if s := l.status(); s.Applied.Commit != forced {
		t.Errorf("--allow-non-fast-forward did not apply %s: %+v", forced, s.Applied)
	}
}

// TestRefuseBadSignatures: with verification on, an unsigned commit and a
// commit signed by a key that is not allowed are refused; a commit signed
// by an allowed key is applied. SSH keys from the real ssh-keygen, GPG keys
// from the real gpg; verification by the real git verify-commit. Fake: the
// stand-in toplevel.
func TestRefuseBadSignatures(t *testing.T) {
	t.Run("SSH", func(t *testing.T) {
		l := newLab(t)
		keygen := testenv.LookPath(t, "ssh-keygen")
		allowed, other := filepath.Join(l.dir, "allowed"), filepath.Join(l.dir, "other")
		for _, k := range []string{allowed, other} {
			if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", k).CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen: %v\n%s", err, out)
			}
		}
		pub, err := os.ReadFile(allowed + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		signers := filepath.Join(l.dir, "allowed_signers")
		if err := os.WriteFile(signers, []byte("release@example.invalid "+string(pub)), 0o644); err != nil {
			t.Fatal(err)
		}
		l.cfg["verify"] = map[string]any{"mode": "ssh", "allowedSigners": signers}

		good := l.commitOpts(testflake.System{Version: "1"}, testflake.CommitOptions{SSHSigningKey: allowed})
		l.apply(0)
		unsigned := l.commit(testflake.System{Version: "2"})
		l.refused("unsigned commit", unsigned, "is not signed", good)
		wrong := l.commitOpts(testflake.System{Version: "3"}, testflake.CommitOptions{SSHSigningKey: other})
		l.refused("commit signed by a key that is not allowed", wrong, "not signed by an allowed key", good)
		fixed := l.commitOpts(testflake.System{Version: "4"}, testflake.CommitOptions{SSHSigningKey: allowed})
		l.apply(0)
		if s := l.status(); s.Applied.Commit != fixed {
			t.Errorf("a commit signed by the allowed key was not applied: %+v", s.Last)
		}

		// verify.allCommits: a signed head does not vouch for an unsigned
		// commit below it, back to the applied one.
		l.cfg["verify"] = map[string]any{"mode": "ssh", "allowedSigners": signers, "allCommits": true}
		sneaked := l.commit(testflake.System{Version: "5"})
		head := l.commitOpts(testflake.System{Version: "6"}, testflake.CommitOptions{SSHSigningKey: allowed})
		l.refused("a signed head on an unsigned commit", head, "commit "+sneaked[:12]+" between the applied one and it", fixed)
		l.cfg["verify"] = map[string]any{"mode": "ssh", "allowedSigners": signers}
		l.apply(0, "--retry-bad") // the refusal is remembered
		if s := l.status(); s.Applied.Commit != head {
			t.Errorf("without allCommits the signed head is applied: %+v", s.Last)
		}
	})
	t.Run("GPG", func(t *testing.T) {
		l := newLab(t)
		gpg := testenv.LookPath(t, "gpg")
		home := filepath.Join(l.dir, "gnupg")
		if err := os.MkdirAll(home, 0o700); err != nil {
			t.Fatal(err)
		}
		genKey := func(uid string) {
			cmd := exec.Command(gpg, "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
			cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("gpg --quick-gen-key: %v\n%s", err, out)
			}
		}
		genKey("Allowed <allowed@example.invalid>")
		genKey("Other <other@example.invalid>")
		t.Cleanup(func() {
			cmd := exec.Command("gpgconf", "--kill", "all")
			cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
			_ = cmd.Run()
		})
		export := exec.Command(gpg, "--batch", "--armor", "--export", "allowed@example.invalid")
		export.Env = append(os.Environ(), "GNUPGHOME="+home)
		pub, err := export.Output()
		if err != nil || len(pub) == 0 {
			t.Fatalf("gpg --export: %v", err)
		}
		keys := filepath.Join(l.dir, "allowed.asc")
		if err := os.WriteFile(keys, pub, 0o644); err != nil {
			t.Fatal(err)
		}
		l.cfg["verify"] = map[string]any{"mode": "gpg", "allowedSigners": keys}
		sign := func(uid string) testflake.CommitOptions {
			return testflake.CommitOptions{GPGKey: uid, GPGHome: home}
		}

		good := l.commitOpts(testflake.System{Version: "1"}, sign("allowed@example.invalid"))
		l.apply(0)
		unsigned := l.commit(testflake.System{Version: "2"})
		l.refused("unsigned commit", unsigned, "is not signed", good)
		wrong := l.commitOpts(testflake.System{Version: "3"}, sign("other@example.invalid"))
		l.refused("commit signed by a key that is not allowed", wrong, "not signed by an allowed key", good)
		fixed := l.commitOpts(testflake.System{Version: "4"}, sign("allowed@example.invalid"))
		l.apply(0)
		if s := l.status(); s.Applied.Commit != fixed {
			t.Errorf("a commit signed by the allowed key was not applied: %+v", s.Last)
		}
	})
}
