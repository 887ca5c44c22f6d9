//go:build vault

package secrets

// The stage against a real Vault dev server (internal/vaulttest). The one
// stand-in is recorder, for systemd: systemd cannot be PID 1 in the test
// process (test/vm boots a real one), so Finish's restarts are recorded.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/agent/state"
	"github.com/homelab-infra/homelab-infra/internal/backoff"
	"github.com/homelab-infra/homelab-infra/internal/vault/bootstrap"
	"github.com/homelab-infra/homelab-infra/internal/vaulttest"
)

// recorder records each Restart call (a fake of systemd, see above).
type recorder struct {
	mu    sync.Mutex
	calls [][]string
}

func (r *recorder) Restart(_ context.Context, units []string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, append([]string(nil), units...))
	return units, nil
}

func (r *recorder) take() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

type fixture struct {
	srv   *vaulttest.Server
	host  vaulttest.Host
	shm   string // tmpfs
	disk  string
	stage *Stage
	units *recorder
	now   time.Time
	st    state.Secrets
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	srv := vaulttest.Start(t)
	srv.Lab(t)
	h := srv.AddHost(t, "dns01", vaulttest.HostOptions{})
	srv.PutKV(t, "hosts/dns01/tsig", map[string]any{"key": "tsig-v1", "algo": "hmac-sha256"})
	shm, err := os.MkdirTemp("/dev/shm", "secrets-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	f := &fixture{srv: srv, host: h, shm: shm, disk: t.TempDir(), units: &recorder{}, now: time.Now()}
	f.stage = &Stage{StateDir: f.disk, Units: f.units, Now: func() time.Time { return f.now },
		Backoff: backoff.Policy{Attempts: 3, Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond}}
	b, err := bootstrap.Marshal(bootstrap.File{Role: "dns01", WrappingToken: srv.WrappedSecretID(t, "dns01", time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.disk, "bootstrap.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// decl is the declarations dns01's Nix config would write: a TSIG key for
// knot and a DNS-over-TLS certificate for unbound.
func (f *fixture) decl(t testing.TB, extra map[string]Secret) *File {
	t.Helper()
	secrets := map[string]Secret{
		"tsig": {KV: &KV{Path: "secret/hosts/dns01/tsig", Field: "key"}, Path: filepath.Join(f.shm, "tsig"),
			Owner: "daemon", Group: "daemon", Mode: "0440", RestartUnits: []string{"knot.service"}},
		"dns-tls": {PKI: &PKI{Role: "dns01", CommonName: "dns01." + vaulttest.Domain, TTL: "3h"},
			Path: filepath.Join(f.shm, "dns-tls.crt"), KeyPath: filepath.Join(f.shm, "dns-tls.key"),
			Owner: "bin", Group: "bin", RestartUnits: []string{"unbound.service"}},
	}
	for k, v := range extra {
		secrets[k] = v
	}
	file := &File{Vault: Vault{Address: f.srv.Addr, RoleID: f.host.RoleID, TokenFile: filepath.Join(f.shm, "vault-token"),
		BootstrapFile: filepath.Join(f.disk, "bootstrap.json")}, Secrets: secrets}
	file.defaults()
	if err := file.Validate(); err != nil {
		t.Fatal(err)
	}
	return file
}

func (f *fixture) refresh(t *testing.T, d *File) Result {
	t.Helper()
	res, err := f.stage.Refresh(context.Background(), d, &f.st)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if err := f.stage.Finish(context.Background(), d, res, &f.st); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	return res
}

func stat(t *testing.T, p string) (uid, gid uint32, mode os.FileMode, content string) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := fi.Sys().(*syscall.Stat_t)
	return s.Uid, s.Gid, fi.Mode().Perm(), string(b)
}

func TestVaultStageFirstBootRotationRenewal(t *testing.T) {
	f := newFixture(t)
	d := f.decl(t, nil)

	// First boot: every secret is new; their units restart once, together.
	res := f.refresh(t, d)
	if diff := cmp.Diff([]string{"dns-tls", "tsig"}, res.Changed); diff != "" {
		t.Errorf("first boot: changed (-want, +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]string{{"knot.service", "unbound.service"}}, f.units.take()); diff != "" {
		t.Errorf("first boot: restarts (-want, +got):\n%s", diff)
	}
	uid, gid, mode, content := stat(t, filepath.Join(f.shm, "tsig"))
	if uid != 1 || gid != 1 || mode != 0o440 || content != "tsig-v1" {
		t.Errorf("tsig: %d:%d %04o %q, want daemon:daemon (1:1) 0440 with the KV value", uid, gid, mode, content)
	}
	for _, p := range []string{"dns-tls.crt", "dns-tls.key"} {
		if uid, gid, mode, _ := stat(t, filepath.Join(f.shm, p)); uid != 2 || gid != 2 || mode != 0o400 {
			t.Errorf("%s: %d:%d %04o, want bin:bin (2:2) 0400", p, uid, gid, mode)
		}
	}
	if err := Check(d, f.now); err != nil {
		t.Errorf("Check after the first refresh: %v", err)
	}
	serial1 := f.st.Items["dns-tls"].Serial
	if f.st.Items["tsig"].Version != 1 || serial1 == "" || f.st.Logins != 1 {
		t.Errorf("state: %+v", f.st)
	}

	// A tick with nothing new: no login, no certificate, nothing written,
	// nothing restarted; one KV read to see whether it rotated.
	res = f.refresh(t, d)
	if len(res.Changed) != 0 || res.Token != "cached" || res.Stats.Logins != 0 || res.Stats.Issues != 0 || res.Stats.Reads != 1 {
		t.Errorf("a no-op tick: %+v", res)
	}
	if c := f.units.take(); len(c) != 0 {
		t.Errorf("a no-op tick restarted %v", c)
	}

	// The KV value rotates in Vault: only knot restarts, once.
	f.srv.PutKV(t, "hosts/dns01/tsig", map[string]any{"key": "tsig-v2", "algo": "hmac-sha256"})
	res = f.refresh(t, d)
	if diff := cmp.Diff([]string{"tsig"}, res.Changed); diff != "" {
		t.Errorf("rotation: changed (-want, +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]string{{"knot.service"}}, f.units.take()); diff != "" {
		t.Errorf("rotation: restarts (-want, +got):\n%s", diff)
	}
	if _, _, _, c := stat(t, filepath.Join(f.shm, "tsig")); c != "tsig-v2" || f.st.Items["tsig"].Version != 2 {
		t.Errorf("rotation: tsig holds %q (version %d)", c, f.st.Items["tsig"].Version)
	}

	// Two thirds into the certificate's life it is renewed: only unbound
	// restarts.
	f.now = f.now.Add(2*time.Hour + time.Minute)
	res = f.refresh(t, d)
	if diff := cmp.Diff([]string{"dns-tls"}, res.Changed); diff != "" {
		t.Errorf("renewal: changed (-want, +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]string{{"unbound.service"}}, f.units.take()); diff != "" {
		t.Errorf("renewal: restarts (-want, +got):\n%s", diff)
	}
	if s := f.st.Items["dns-tls"].Serial; s == serial1 || s == "" {
		t.Errorf("renewal: serial %q, want a new one (was %q)", s, serial1)
	}
	// A changed name reissues at once.
	d.Secrets["dns-tls"].PKI.AltNames = []string{"dns01." + vaulttest.Domain, "dns01"}
	if _, err := f.stage.Refresh(context.Background(), d, &f.st); err == nil {
		t.Errorf("a name outside the role's domains was issued")
	}
}

func TestVaultStageNothingHalfWritten(t *testing.T) {
	f := newFixture(t)
	f.srv.PutKV(t, "hosts/docker01/registry", map[string]any{"password": "docker01-only"})
	good := f.decl(t, nil)
	f.refresh(t, good)
	f.units.take()
	before := map[string]string{}
	for _, p := range []string{"tsig", "dns-tls.crt", "dns-tls.key"} {
		_, _, _, before[p] = stat(t, filepath.Join(f.shm, p))
	}

	f.srv.PutKV(t, "hosts/dns01/tsig", map[string]any{"key": "tsig-v2", "algo": "hmac-sha256"})
	f.now = f.now.Add(time.Minute)
	bad := f.decl(t, map[string]Secret{
		"registry": {KV: &KV{Path: "secret/hosts/docker01/registry", Field: "password"}, Path: filepath.Join(f.shm, "registry")},
		"ghost":    {KV: &KV{Path: "secret/hosts/dns01/ghost", Field: "key"}, Path: filepath.Join(f.shm, "ghost")},
		"nofield":  {KV: &KV{Path: "secret/hosts/dns01/tsig", Field: "secret"}, Path: filepath.Join(f.shm, "nofield")},
	})
	_, err := f.stage.Refresh(context.Background(), bad, &f.st)
	if err == nil {
		t.Fatal("Refresh with broken secrets succeeded")
	}
	for _, want := range []string{
		"secrets.registry (kv secret/hosts/docker01/registry#password)", "does not allow read",
		"secrets.ghost (kv secret/hosts/dns01/ghost#key)", "no KV v2 secret",
		"secrets.nofield (kv secret/hosts/dns01/tsig#secret)", `has no field "secret"`,
		"no secret written",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "docker01-only") || strings.Contains(err.Error(), "tsig-v2") {
		t.Errorf("the error shows a value: %v", err)
	}
	// Nothing half-written: the rotated tsig was not written either, and no
	// new file appeared.
	for p, want := range before {
		if _, _, _, got := stat(t, filepath.Join(f.shm, p)); got != want {
			t.Errorf("%s changed although the run failed", p)
		}
	}
	for _, p := range []string{"registry", "ghost", "nofield"} {
		if _, err := os.Stat(filepath.Join(f.shm, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was written by a failed run", p)
		}
	}
	if f.st.Error == "" || f.st.Items["ghost"].Error == "" || f.st.LastSuccess.Equal(f.st.LastRun) {
		t.Errorf("the state does not record the failure: %+v", f.st)
	}
	if c := f.units.take(); len(c) != 0 {
		t.Errorf("a failed run restarted %v", c)
	}
}

func TestVaultStageVaultDown(t *testing.T) {
	f := newFixture(t)
	proxy := vaulttest.NewProxy(t, f.srv.HostPort())
	d := f.decl(t, nil)
	d.Vault.Address = proxy.Addr
	f.refresh(t, d)
	f.units.take()
	_, _, _, was := stat(t, filepath.Join(f.shm, "tsig"))

	proxy.Down()
	var waits []time.Duration
	f.stage.Backoff.Sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	f.srv.PutKV(t, "hosts/dns01/tsig", map[string]any{"key": "tsig-v2"})
	_, err := f.stage.Refresh(context.Background(), d, &f.st)
	if err == nil || !strings.Contains(err.Error(), "cannot reach Vault") {
		t.Fatalf("Refresh with Vault down: %v, want an error saying Vault cannot be reached", err)
	}
	if diff := cmp.Diff([]time.Duration{10 * time.Millisecond, 20 * time.Millisecond}, waits); diff != "" {
		t.Errorf("back-off between the 3 attempts (-want, +got):\n%s", diff)
	}
	if _, _, _, now := stat(t, filepath.Join(f.shm, "tsig")); now != was {
		t.Errorf("the last written secret changed while Vault was down")
	}
	if err := Check(d, f.now); err != nil {
		t.Errorf("the secrets are no longer in place while Vault is down: %v", err)
	}
	if f.st.VaultReachable || f.st.Failures != 1 || !strings.Contains(f.st.Error, "cannot reach Vault") {
		t.Errorf("the state does not say Vault is unreachable: %+v", f.st)
	}

	proxy.Up(t)
	res := f.refresh(t, d)
	if diff := cmp.Diff([]string{"tsig"}, res.Changed); diff != "" || !f.st.VaultReachable {
		t.Errorf("Vault back: changed (-want, +got):\n%s; reachable %v", diff, f.st.VaultReachable)
	}
}

func TestVaultStageRefusesDisk(t *testing.T) {
	f := newFixture(t)
	d := f.decl(t, map[string]Secret{
		"ondisk": {KV: &KV{Path: "secret/hosts/dns01/tsig", Field: "key"}, Path: filepath.Join(f.disk, "secrets", "ondisk")},
	})
	_, err := f.stage.Refresh(context.Background(), d, &f.st)
	if err == nil || !strings.Contains(err.Error(), "secrets.ondisk") || !strings.Contains(err.Error(), "never reach a disk") {
		t.Fatalf("a secret on disk: %v, want a refusal naming secrets.ondisk", err)
	}
	for _, p := range []string{filepath.Join(f.disk, "secrets", "ondisk"), filepath.Join(f.shm, "tsig")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was written although the run was refused", p)
		}
	}
}

func TestVaultStageOwnerCreatedBySwitch(t *testing.T) {
	f := newFixture(t)
	d := f.decl(t, map[string]Secret{
		"later": {KV: &KV{Path: "secret/hosts/dns01/tsig", Field: "key"}, Path: filepath.Join(f.shm, "later"),
			Owner: "nix-gitops-test-nobody", Group: "nix-gitops-test-nobody", Mode: "0440"},
	})
	res, err := f.stage.Refresh(context.Background(), d, &f.st)
	if err != nil {
		t.Fatal(err)
	}
	// Written before the switch that would create the user: root's only.
	if uid, gid, mode, _ := stat(t, filepath.Join(f.shm, "later")); uid != 0 || gid != 0 || mode != 0o400 {
		t.Errorf("a secret whose owner does not exist yet: %d:%d %04o, want root:root 0400", uid, gid, mode)
	}
	if diff := cmp.Diff([]string{filepath.Join(f.shm, "later")}, res.Pending); diff != "" {
		t.Errorf("pending (-want, +got):\n%s", diff)
	}
	// After the switch the owner must exist; here it does not: named.
	err = f.stage.Finish(context.Background(), d, res, &f.st)
	if err == nil || !strings.Contains(err.Error(), `secrets.later: owner "nix-gitops-test-nobody"`) {
		t.Errorf("Finish with an owner that never appeared: %v", err)
	}
	if err := Check(d, f.now); err == nil || !strings.Contains(err.Error(), "secrets.later") {
		t.Errorf("Check with an owner that never appeared: %v", err)
	}
}

func TestVaultStagePrune(t *testing.T) {
	f := newFixture(t)
	d := f.decl(t, nil)
	f.refresh(t, d)
	// The next system drops tsig. Before its switch nothing is deleted (a
	// rollback may need it); once it is the applied one, Prune deletes it.
	next := f.decl(t, nil)
	delete(next.Secrets, "tsig")
	if _, err := f.stage.Refresh(context.Background(), next, &f.st); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.shm, "tsig")); err != nil {
		t.Errorf("a refresh deleted a secret the running system may need: %v", err)
	}
	f.stage.Prune(next, &f.st)
	if _, err := os.Stat(filepath.Join(f.shm, "tsig")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dropped secret's file is still there: %v", err)
	}
	if _, ok := f.st.Items["tsig"]; ok {
		t.Errorf("the dropped secret is still in the state")
	}
	for _, p := range []string{"dns-tls.crt", "dns-tls.key"} {
		if _, err := os.Stat(filepath.Join(f.shm, p)); err != nil {
			t.Errorf("Prune deleted a declared secret's %s: %v", p, err)
		}
	}
}
