//go:build vault

package main

// The real nix-gitops binary against a real Vault dev server
// (internal/vaulttest), real git and real nix. The stand-ins are the ones
// of the harness (harness_test.go): the testflake toplevel, whose switch
// here also plays a service that needs its secret file to start
// (testflake.System.NeedFiles), and no systemd as PID 1, so the units of
// changed secrets are not restarted here (the agent logs which it would
// restart; internal/agent/secrets proves exactly-once restarts, test/vm's
// systemd is the real one). Secrets go to a real tmpfs (/dev/shm).

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/testflake"
	"github.com/homelab-infra/homelab-infra/internal/vault/bootstrap"
	"github.com/homelab-infra/homelab-infra/internal/vaulttest"
)

// tsigValue is the KV secret the tests put in Vault, drawn afresh for each
// run: a literal would also be in this file, which the flake's source (and
// so the Nix store the hidden-secrets test searches) holds.
var tsigValue = "tsig-" + rand.Text()

// vlab is a lab machine with a Vault: host h1, its role and policy, a KV
// secret and a PKI role, and tmpfs for its secrets.
type vlab struct {
	*lab
	srv  *vaulttest.Server
	host vaulttest.Host
	shm  string
	addr string // what the machine dials: the server, or a proxy
}

func newVLab(t testing.TB) *vlab {
	t.Helper()
	l := newLab(t)
	srv := vaulttest.Start(t)
	srv.Lab(t)
	h := srv.AddHost(t, "h1", vaulttest.HostOptions{})
	srv.PutKV(t, "hosts/h1/tsig", map[string]any{"key": tsigValue, "algo": "hmac-sha256"})
	shm, err := os.MkdirTemp("/dev/shm", "nix-gitops-vault-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	return &vlab{lab: l, srv: srv, host: h, shm: shm, addr: srv.Addr}
}

func (v *vlab) bootFile() string  { return filepath.Join(v.dir, "vault-bootstrap.json") }
func (v *vlab) tokenFile() string { return filepath.Join(v.shm, "vault-token") }
func (v *vlab) secretID() string  { return filepath.Join(v.dir, "state", "vault", "secret-id") }

// decl is h1's declarations, as nix/modules/nix-gitops-secrets.nix writes
// them: a KV field for "knot" and a certificate for "unbound".
func (v *vlab) decl(extra map[string]any) string {
	secrets := map[string]any{
		"tsig": map[string]any{"kv": map[string]any{"path": "secret/hosts/h1/tsig", "field": "key"},
			"path": filepath.Join(v.shm, "tsig"), "owner": "daemon", "group": "daemon", "mode": "0440", "restartUnits": []string{"knot.service"}},
		"dns-tls": map[string]any{"pki": map[string]any{"role": "h1", "commonName": "h1." + vaulttest.Domain, "ttl": "3h"},
			"path": filepath.Join(v.shm, "dns-tls.crt"), "keyPath": filepath.Join(v.shm, "dns-tls.key"),
			"owner": "bin", "group": "bin", "restartUnits": []string{"unbound.service"}},
	}
	for k, x := range extra {
		secrets[k] = x
	}
	b, err := json.Marshal(map[string]any{
		"vault":   map[string]any{"address": v.addr, "roleId": v.host.RoleID, "tokenFile": v.tokenFile(), "bootstrapFile": v.bootFile()},
		"secrets": secrets,
	})
	if err != nil {
		v.t.Fatal(err)
	}
	return string(b)
}

// system is a commit's host h1 that declares the secrets and whose
// "services" need the two files that carry them.
func (v *vlab) system(version string, extra map[string]any) testflake.System {
	return testflake.System{Version: version, Secrets: v.decl(extra),
		NeedFiles: []string{filepath.Join(v.shm, "tsig"), filepath.Join(v.shm, "dns-tls.key")}}
}

// boot is cloud-init writing the first-boot file the function rendered.
func (v *vlab) boot(token string, expires time.Time) {
	v.t.Helper()
	b, err := bootstrap.Marshal(bootstrap.File{Role: "h1", WrappingToken: token, Expires: expires})
	if err != nil {
		v.t.Fatal(err)
	}
	if err := os.WriteFile(v.bootFile(), b, 0o600); err != nil {
		v.t.Fatal(err)
	}
}

func fileInfo(t *testing.T, p string) (uid, gid uint32, mode os.FileMode, content string) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid, fi.Mode().Perm(), string(b)
}

func TestVaultFirstBootAndReboot(t *testing.T) {
	v := newVLab(t)
	v.boot(v.srv.WrappedSecretID(t, "h1", 5*time.Minute), time.Now().Add(5*time.Minute))
	c1 := v.commit(v.system("1", nil))

	// First boot: logged in (the token unwrapped once), every secret on
	// tmpfs with its owner and mode before the switch, whose "services"
	// found them and started.
	r := v.apply(0, "--first-boot")
	if s := v.status(); s.Applied == nil || s.Applied.Commit != c1 {
		t.Fatalf("not applied: %+v", s.Last)
	}
	if calls := v.calls(); len(calls) != 2 || calls[1].Result != "ok" {
		t.Errorf("the switch did not succeed with the secrets in place: %v", calls)
	}
	if uid, gid, mode, c := fileInfo(t, filepath.Join(v.shm, "tsig")); uid != 1 || gid != 1 || mode != 0o440 || c != tsigValue {
		t.Errorf("tsig: %d:%d %04o, want daemon:daemon 0440 with the KV value", uid, gid, mode)
	}
	for _, p := range []string{"dns-tls.crt", "dns-tls.key"} {
		if uid, gid, mode, _ := fileInfo(t, filepath.Join(v.shm, p)); uid != 2 || gid != 2 || mode != 0o400 {
			t.Errorf("%s: %d:%d %04o, want bin:bin 0400", p, uid, gid, mode)
		}
	}
	if _, err := os.Stat(v.bootFile()); !os.IsNotExist(err) {
		t.Errorf("the used first-boot file is still there")
	}
	if _, _, mode, _ := fileInfo(t, v.secretID()); mode != 0o600 {
		t.Errorf("the kept secret_id has mode %04o, want 0600", mode)
	}
	if !strings.Contains(r.stderr, "unwrapped the first-boot secret_id") || !strings.Contains(r.stderr, "health check") ||
		!strings.Contains(r.stderr, `check="secrets in place" status=ok`) {
		t.Errorf("the log does not show the unwrap and the secrets check in the gate:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "units=knot.service,unbound.service") {
		t.Errorf("the log does not name the units of the new secrets:\n%s", r.stderr)
	}
	m := v.metrics()
	if m["nix_gitops_secrets_up"] != 1 || m["nix_gitops_vault_logins_total"] != 1 || m["nix_gitops_vault_reachable"] != 1 ||
		m["nix_gitops_secret_info{kind=kv,name=tsig,source=kv secret/hosts/h1/tsig#key}"] != 1 {
		t.Errorf("metrics after the first boot: %v", m)
	}

	// A timer tick with nothing new in Git: the secrets are refreshed with
	// the cached token, no new login, nothing written.
	r = v.apply(10)
	if m := v.metrics(); m["nix_gitops_vault_logins_total"] != 1 || m["nix_gitops_secret_changes_total"] != 2 {
		t.Errorf("a no-op tick: logins %v, changes %v; want 1 login in all and no new writes", m["nix_gitops_vault_logins_total"], m["nix_gitops_secret_changes_total"])
	}

	// Rotation in Vault: the next tick writes it; only knot's unit is named.
	v.srv.PutKV(t, "hosts/h1/tsig", map[string]any{"key": "tsig-value-2"})
	r = v.apply(10)
	if _, _, _, c := fileInfo(t, filepath.Join(v.shm, "tsig")); c != "tsig-value-2" {
		t.Errorf("the rotated value was not written: %q", c)
	}
	if logValue(r.stderr, "secrets changed; not restarting their units: no systemd", "units") != "knot.service" {
		t.Errorf("the rotation must name knot.service alone:\n%s", r.stderr)
	}

	// Reboot: tmpfs is empty; the boot-time `nix-gitops secrets` logs in
	// again with the kept secret_id, no new wrapping token.
	for _, p := range []string{"tsig", "dns-tls.crt", "dns-tls.key", "vault-token"} {
		if err := os.Remove(filepath.Join(v.shm, p)); err != nil {
			t.Fatal(err)
		}
	}
	if res := v.run("secrets"); res.code != 0 {
		t.Fatalf("nix-gitops secrets after a reboot: exit %d\n%s", res.code, res.stderr)
	}
	if _, _, _, c := fileInfo(t, filepath.Join(v.shm, "tsig")); c != "tsig-value-2" {
		t.Errorf("after the reboot tsig holds %q", c)
	}
	if m := v.metrics(); m["nix_gitops_vault_logins_total"] != 2 {
		t.Errorf("after the reboot: %v logins, want 2 (one new, with the kept secret_id)", m["nix_gitops_vault_logins_total"])
	}
}

func TestVaultRefusalsKeepThePreviousSystem(t *testing.T) {
	cases := map[string]struct {
		reason string
		setup  func(t *testing.T, v *vlab) (extra map[string]any)
		want   []string
	}{
		"AlreadyUnwrapped": {
			reason: "someone used the wrapping token first",
			setup: func(t *testing.T, v *vlab) map[string]any {
				tok := v.srv.WrappedSecretID(t, "h1", 5*time.Minute)
				thief, _ := vaulttest.NewClient(v.srv.Addr, tok)
				if _, err := thief.Logical().Unwrap(""); err != nil {
					t.Fatal(err)
				}
				v.boot(tok, time.Now().Add(5*time.Minute))
				return nil
			},
			want: []string{"already unwrapped by someone else", "tamper signal"},
		},
		"Expired": {
			reason: "the wrapping token expired before first boot",
			setup: func(t *testing.T, v *vlab) map[string]any {
				tok := v.srv.WrappedSecretID(t, "h1", time.Second)
				time.Sleep(2500 * time.Millisecond)
				v.boot(tok, time.Now().Add(-time.Second))
				return nil
			},
			want: []string{"expired at"},
		},
		"WrongRole": {
			reason: "a token for another machine's role",
			setup: func(t *testing.T, v *vlab) map[string]any {
				v.srv.AddHost(t, "other", vaulttest.HostOptions{})
				v.boot(v.srv.WrappedSecretID(t, "other", 5*time.Minute), time.Now().Add(5*time.Minute))
				return nil
			},
			want: []string{`made at \"auth/approle/role/other/secret-id\"`, "not unwrapped"},
		},
		"MissingSecret": {
			reason: "a required secret is not in Vault",
			setup: func(t *testing.T, v *vlab) map[string]any {
				v.boot(v.srv.WrappedSecretID(t, "h1", 5*time.Minute), time.Time{})
				return map[string]any{"ghost": map[string]any{"kv": map[string]any{"path": "secret/hosts/h1/ghost", "field": "key"}, "path": filepath.Join(v.shm, "ghost")}}
			},
			want: []string{"secrets.ghost (kv secret/hosts/h1/ghost#key)", "no KV v2 secret", "no secret written"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v := newVLab(t)
			c1 := v.commit(testflake.System{Version: "1"}) // the running system, no secrets yet
			v.apply(0)
			prev := v.profileTarget()
			extra := tc.setup(t, v)
			v.commit(v.system("2", extra))
			// Vault's refusals are Temporary (the stage's choice: not the
			// commit's fault), so the exit status asks systemd to retry (23).
			r := v.apply(23)
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("%s: the log does not say %q:\n%s", tc.reason, w, r.stderr)
				}
			}
			s := v.status()
			if s.Applied.Commit != c1 || v.profileTarget() != prev || s.Last.Stage != "secrets" {
				t.Errorf("%s: the machine moved: applied %s, profile %s (was %s), last %+v", tc.reason, s.Applied.Commit, v.profileTarget(), prev, s.Last)
			}
			if calls := v.calls(); len(calls) != 2 {
				t.Errorf("%s: a switch happened: %v", tc.reason, calls)
			}
			if name != "MissingSecret" {
				if _, err := os.Stat(filepath.Join(v.shm, "tsig")); !os.IsNotExist(err) {
					t.Errorf("%s: a secret was written without a Vault identity", tc.reason)
				}
			}
		})
	}
}

func TestVaultDownKeepsSecrets(t *testing.T) {
	v := newVLab(t)
	proxy := vaulttest.NewProxy(t, v.srv.HostPort())
	v.addr = proxy.Addr
	v.boot(v.srv.WrappedSecretID(t, "h1", 5*time.Minute), time.Time{})
	v.commit(v.system("1", nil))
	v.apply(0)
	_, _, _, was := fileInfo(t, filepath.Join(v.shm, "tsig"))

	proxy.Down()
	v.srv.PutKV(t, "hosts/h1/tsig", map[string]any{"key": "tsig-value-2"})
	r := v.apply(21)
	if !strings.Contains(r.stderr, "cannot reach Vault; retrying") || !strings.Contains(r.stderr, "cannot reach Vault") {
		t.Errorf("no back-off while Vault is down:\n%s", r.stderr)
	}
	if _, _, _, now := fileInfo(t, filepath.Join(v.shm, "tsig")); now != was {
		t.Errorf("the last written secret changed while Vault was down")
	}
	s := v.status()
	if s.Last.Stage != "secrets" || s.Secrets == nil || s.Secrets.VaultReachable || !strings.Contains(s.Secrets.Error, "cannot reach Vault") {
		t.Errorf("the status does not say Vault is down: last %+v, secrets %+v", s.Last, s.Secrets)
	}
	m := v.metrics()
	if m["nix_gitops_vault_reachable"] != 0 || m["nix_gitops_secrets_up"] != 0 || m["nix_gitops_failures_total{stage=secrets}"] != 1 {
		t.Errorf("the metrics do not say Vault is down: %v", m)
	}
	st := v.run("status")
	if !strings.Contains(st.stdout, "vault reachable false") {
		t.Errorf("nix-gitops status does not say Vault is down:\n%s", st.stdout)
	}

	proxy.Up(t)
	v.apply(10)
	if _, _, _, now := fileInfo(t, filepath.Join(v.shm, "tsig")); now != "tsig-value-2" {
		t.Errorf("Vault back: the rotated value was not written")
	}
}

// TestVaultSecretsStayHidden extends TestSecretsStayHidden to Vault: the
// KV value, the certificate's private key, the secret_id, the machine's
// Vault token, the wrapping token and an operator's VAULT_TOKEN appear in
// no child's argv or environment (strace of every execve), not in the
// logs, not in state.json, the metrics or anything else in the state folder
// but the one file that keeps the secret_id, not in Git and not in the Nix
// store.
// (The Kubernetes objects are test/e2e's TestVaultNoSecretInTheCluster.)
func TestVaultSecretsStayHidden(t *testing.T) {
	v := newVLab(t)
	wrap := v.srv.WrappedSecretID(t, "h1", 5*time.Minute)
	v.boot(wrap, time.Time{})
	// An operator's shell token must not leak through the agent either.
	v.env = append(v.env, "VAULT_TOKEN="+v.srv.RootToken)
	v.commit(v.system("1", nil))
	code, stderr, trace := v.traced("--first-boot")
	if code != 0 {
		t.Fatalf("traced apply: exit %d\n%s", code, stderr)
	}
	var tok struct{ Token string }
	b, err := os.ReadFile(v.tokenFile())
	if err != nil || json.Unmarshal(b, &tok) != nil || tok.Token == "" {
		t.Fatalf("cannot read the cached token: %v", err)
	}
	sid, err := os.ReadFile(v.secretID())
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, key := fileInfo(t, filepath.Join(v.shm, "dns-tls.key"))
	secrets := map[string]string{
		"the KV value": tsigValue, "the secret_id": strings.TrimSpace(string(sid)), "the Vault token": tok.Token,
		"the wrapping token": wrap, "the operator's token": v.srv.RootToken,
	}
	for i, line := range strings.Split(key, "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") {
			secrets[fmt.Sprintf("line %d of the private key", i+1)] = line
		}
	}
	var values []string
	for _, s := range secrets {
		values = append(values, s)
	}
	// The first execve is strace starting the agent itself, with the test's
	// environment; every later one is a child of the agent.
	_, children, _ := strings.Cut(trace, "\n")
	assertHidden(t, "Vault secrets", stderr, children, values, []string{`"fetch", "--quiet"`, `"nix"`, "switch-to-configuration"})

	// The state folder: state.json, the metrics textfile, the clone, the
	// lock; only vault/secret-id holds the secret_id, root-only.
	grepTree(t, filepath.Join(v.dir, "state"), secrets, map[string]bool{v.secretID(): true})
	grepTree(t, filepath.Join(v.dir, "metrics"), secrets, nil)
	// Git: the repository the machine follows; its work tree is what was
	// committed, declarations included (the bare repository's objects are
	// compressed, so they are searched through the work tree and the
	// store's copy of the flake).
	grepTree(t, filepath.Join(v.dir, "git"), secrets, nil)
	// The Nix store: the toplevel (with the declarations) and the flake
	// source were built or copied there during this test.
	out, err := exec.Command("nix-store", "-qR", v.profileTarget()).Output()
	if err != nil {
		t.Fatalf("nix-store -qR: %v", err)
	}
	closure := strings.Fields(string(out))
	if len(closure) == 0 {
		t.Fatal("the toplevel has an empty closure")
	}
	grepTree(t, "/nix/store", secrets, nil)
}

// grepTree fails when any secret is in any file below root (but skip).
func grepTree(t *testing.T, root string, secrets map[string]string, skip map[string]bool) {
	t.Helper()
	n := 0
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() || skip[p] {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		n++
		for what, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("%s is in %s", what, p)
			}
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Errorf("cannot search %s (%d files): %v", root, n, err)
	}
}
