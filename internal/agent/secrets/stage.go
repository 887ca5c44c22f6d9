package secrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/state"
	"github.com/homelab-infra/homelab-infra/internal/backoff"
	"github.com/homelab-infra/homelab-infra/internal/vault"
)

// Stage runs the secrets stage. One Stage lives as long as the agent
// process: the daemon keeps its Vault client, and with it the token, in
// memory between ticks.
type Stage struct {
	// StateDir is the agent's state folder; the Vault identity (the
	// secret_id) is kept in StateDir/vault, root only.
	StateDir string
	// Units restarts the units of changed secrets.
	Units Units
	Log   *slog.Logger
	Now   func() time.Time
	// Backoff is the back-off while Vault cannot be reached (the agent's
	// retry.* settings).
	Backoff backoff.Policy

	client    *vault.Client
	clientFor Vault
}

// Result is what a Refresh wrote and what Finish must do.
type Result struct {
	// Changed are the secrets whose value changed (or that were new).
	Changed []string
	// Units are the units to restart: those that declared a changed secret.
	Units []string
	// Pending are files written root-owned because their owner or group did
	// not exist yet (a user the coming switch creates): Finish gives them
	// to their owner.
	Pending []string
	// Token is how the stage got its Vault token ("cached", "renewed", "login").
	Token string
	// Stats are the Vault calls made.
	Stats vault.Stats
}

// Client returns the Vault client for f, reusing the one made before while
// f's Vault settings stay the same.
func (s *Stage) Client(f *File) (*vault.Client, error) {
	if s.client != nil && s.clientFor == f.Vault {
		return s.client, nil
	}
	c, err := vault.New(vault.Config{
		Address: f.Vault.Address, CAFile: f.Vault.CAFile, RoleID: f.Vault.RoleID, AuthMount: f.Vault.AuthMount,
		IdentityDir: filepath.Join(s.StateDir, "vault"), TokenFile: f.Vault.TokenFile, BootstrapFile: f.Vault.BootstrapFile,
		Now: s.now, Log: s.log(),
	})
	if err != nil {
		return nil, err
	}
	s.client, s.clientFor = c, f.Vault
	return c, nil
}

func (s *Stage) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Stage) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// fetched is one secret's new content, in memory until all are fetched.
type fetched struct {
	name    string
	files   []file // the value (kv) or the certificate and key (pki)
	keep    bool   // a PKI certificate that needs no renewal: nothing to write
	item    state.SecretItem
	changed bool
}

type file struct {
	path string
	data []byte
}

// Refresh logs in (or reuses its token), fetches every declared secret and,
// only if all of them could be fetched, writes those that changed. On any
// error nothing is written: the files stay as the last good run left them,
// and the error names each secret that failed and why. st is updated either
// way (never with a value).
func (s *Stage) Refresh(ctx context.Context, f *File, st *state.Secrets) (Result, error) {
	now := s.now().UTC()
	st.LastRun = now
	if st.Items == nil {
		st.Items = map[string]state.SecretItem{}
	}
	c, err := s.Client(f)
	if err != nil {
		return Result{}, s.failed(st, err)
	}
	before := c.Stats
	var res Result
	var got []fetched
	err = s.retry(ctx, func() error {
		info, err := c.Login(ctx)
		if err != nil {
			return err
		}
		res.Token = info.How
		st.TokenExpires = info.Expires.UTC()
		got, err = s.fetchAll(ctx, c, f, st)
		return err
	})
	res.Stats = diff(c.Stats, before)
	st.Logins += int64(res.Stats.Logins)
	st.Renewals += int64(res.Stats.Renewals)
	st.VaultReachable = err == nil || !vault.Retryable(err)
	if err != nil {
		return res, s.failed(st, err)
	}
	if err := s.write(f, got, &res); err != nil {
		return res, s.failed(st, err)
	}
	for _, g := range got {
		it := g.item
		if g.changed {
			it.Changed = now
			st.Changes++
		} else if old, ok := st.Items[g.name]; ok {
			it.Changed = old.Changed
		}
		st.Items[g.name] = it
	}
	st.LastSuccess = now
	st.Error = ""
	return res, nil
}

func (s *Stage) failed(st *state.Secrets, err error) error {
	st.Failures++
	st.Error = err.Error()
	return err
}

func diff(a, b vault.Stats) vault.Stats {
	return vault.Stats{Logins: a.Logins - b.Logins, Renewals: a.Renewals - b.Renewals, Unwraps: a.Unwraps - b.Unwraps,
		Reads: a.Reads - b.Reads, Issues: a.Issues - b.Issues}
}

// retry runs fn with the back-off while Vault cannot be reached; any
// other failure is final.
func (s *Stage) retry(ctx context.Context, fn func() error) error {
	return backoff.Retry(ctx, s.Backoff, func(err error) bool { return !vault.Retryable(err) },
		func(i int, wait time.Duration, err error) {
			s.log().Warn("cannot reach Vault; retrying", "attempt", i, "of", s.Backoff.Attempts, "in", wait, "err", err)
		}, fn)
}

// fetchAll fetches every secret. It goes on after a failure, so one run
// reports every broken secret, each named with its option path.
func (s *Stage) fetchAll(ctx context.Context, c *vault.Client, f *File, st *state.Secrets) ([]fetched, error) {
	var out []fetched
	var errs []error
	for _, name := range Names(f) {
		sec := f.Secrets[name]
		g, err := s.fetch(ctx, c, name, sec)
		if err != nil {
			if vault.Retryable(err) || vault.KindOf(err) == vault.Identity {
				return nil, err // nothing else can succeed either
			}
			it := st.Items[name]
			it.Kind, it.Source, it.Path, it.Error = sec.Kind(), source(sec), sec.Path, err.Error()
			st.Items[name] = it
			errs = append(errs, fmt.Errorf("secrets.%s (%s): %w", name, source(sec), err))
			continue
		}
		out = append(out, g)
	}
	if len(errs) > 0 {
		return nil, &vault.Error{Kind: vault.KindOf(errs[0]), Err: fmt.Errorf("no secret written: %w", errors.Join(errs...))}
	}
	return out, nil
}

func source(s Secret) string {
	if s.PKI != nil {
		return "pki " + s.PKI.Mount + "/issue/" + s.PKI.Role
	}
	return "kv " + s.KV.Path + "#" + s.KV.Field
}

func (s *Stage) fetch(ctx context.Context, c *vault.Client, name string, sec Secret) (fetched, error) {
	g := fetched{name: name, item: state.SecretItem{Kind: sec.Kind(), Source: source(sec), Path: sec.Path, KeyPath: sec.KeyPath}}
	if sec.KV != nil {
		v, err := c.ReadKV(ctx, sec.KV.Path, sec.KV.Field)
		if err != nil {
			return g, err
		}
		g.item.Version = v.Version
		g.files = []file{{sec.Path, v.Value}}
		return g, nil
	}
	if cur, ok := currentCert(sec, s.now()); ok {
		g.keep = true
		g.item.Serial, g.item.NotAfter = serialString(cur.SerialNumber.Bytes()), cur.NotAfter.UTC()
		return g, nil
	}
	cert, err := c.IssueCert(ctx, vault.CertRequest{Mount: sec.PKI.Mount, Role: sec.PKI.Role, CommonName: sec.PKI.CommonName,
		AltNames: sec.PKI.AltNames, IPSANs: sec.PKI.IPSANs, TTL: sec.PKI.ttl()})
	if err != nil {
		return g, err
	}
	g.item.Serial, g.item.NotAfter = cert.Serial, cert.NotAfter.UTC()
	// The key first: a reader that sees the new certificate finds its key.
	g.files = []file{{sec.KeyPath, cert.PrivateKey}, {sec.Path, cert.Certificate}}
	s.log().Info("issued a certificate", "secret", name, "commonName", sec.PKI.CommonName, "serial", cert.Serial, "notAfter", cert.NotAfter.UTC())
	return g, nil
}

func serialString(b []byte) string {
	var sb strings.Builder
	for i, x := range b {
		if i > 0 {
			sb.WriteByte(':')
		}
		fmt.Fprintf(&sb, "%02x", x)
	}
	return sb.String()
}

// write puts every fetched secret in place and collects what changed.
func (s *Stage) write(f *File, got []fetched, res *Result) error {
	// Every target folder first: a folder on disk refuses the whole run
	// before any secret is written.
	for _, g := range got {
		for _, fl := range g.files {
			if err := ensureDir(filepath.Dir(fl.path)); err != nil {
				return fmt.Errorf("secrets.%s: %w", g.name, err)
			}
		}
	}
	units := map[string]bool{}
	for i := range got {
		g := &got[i]
		if g.keep {
			continue
		}
		sec := f.Secrets[g.name]
		o, pending, err := owner(sec)
		if err != nil {
			return fmt.Errorf("secrets.%s: %w", g.name, err)
		}
		for _, fl := range g.files {
			changed, err := put(fl.path, fl.data, o)
			if err != nil {
				return fmt.Errorf("secrets.%s: %w", g.name, err)
			}
			g.changed = g.changed || changed
			if pending {
				res.Pending = append(res.Pending, fl.path)
			}
		}
		if g.changed {
			res.Changed = append(res.Changed, g.name)
			for _, u := range sec.RestartUnits {
				units[u] = true
			}
			s.log().Info("secret written", "secret", g.name, "path", sec.Path, "source", g.item.Source, "version", g.item.Version, "serial", g.item.Serial)
		}
	}
	for u := range units {
		res.Units = append(res.Units, u)
	}
	slices.Sort(res.Units)
	return nil
}

// ensureDir makes a secrets folder and checks that it is on tmpfs.
func ensureDir(dir string) error {
	mode := os.FileMode(0o755)
	if dir == Dir {
		mode = 0o751 // services reach their own files; nobody lists them
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, mode); err != nil {
			return fmt.Errorf("cannot create %s: %w", dir, err)
		}
		_ = os.Chmod(dir, mode)
	}
	if err := onTmpfs(dir); err != nil {
		return fmt.Errorf("%w: secrets must never reach a disk; put the file under /run (tmpfs), e.g. %s", err, Dir)
	}
	return nil
}

// put writes data at path with o unless it is there already. changed tells
// whether the content differed (a change of owner or mode alone is fixed
// without counting as a change).
func put(path string, data []byte, o fileOwner) (changed bool, err error) {
	cur, rerr := os.ReadFile(path)
	same := rerr == nil && bytes.Equal(cur, data)
	if same && o.Matches(path) {
		return false, nil
	}
	if err := writeSecret(path, data, o); err != nil {
		return false, err
	}
	return !same, nil
}

// Prune deletes the files of secrets that st remembers but f no longer
// declares, and forgets them: a secret dropped from the Nix config leaves
// no copy behind. Run it only for the system that is applied (after its
// health gate): before a switch the previous system may still need them.
func (s *Stage) Prune(f *File, st *state.Secrets) {
	for name, it := range st.Items {
		if _, ok := f.Secrets[name]; ok {
			continue
		}
		for _, p := range []string{it.Path, it.KeyPath} {
			if p == "" || onTmpfs(filepath.Dir(p)) != nil {
				continue // only files this stage wrote, on tmpfs
			}
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log().Warn("cannot delete the file of a secret no longer declared", "secret", name, "path", p, "err", err)
				continue
			}
			s.log().Info("deleted the file of a secret no longer declared", "secret", name, "path", p)
		}
		delete(st.Items, name)
	}
}

// Finish gives pending files to their owners (the switch has created them
// by now) and restarts, in one call, the units of the changed secrets.
// Units that are not running (stopped on purpose, or not started yet at
// boot) are left alone.
func (s *Stage) Finish(ctx context.Context, f *File, res Result, st *state.Secrets) error {
	if err := FixOwners(f); err != nil {
		return err
	}
	if len(res.Units) == 0 {
		return nil
	}
	restarted, err := s.Units.Restart(ctx, res.Units)
	if errors.Is(err, ErrNoSystemd) {
		s.log().Info("secrets changed; not restarting their units: no systemd", "units", strings.Join(res.Units, ","))
		return nil
	}
	st.Restarts += int64(len(restarted))
	if err != nil {
		return fmt.Errorf("cannot restart the units of changed secrets (%s): %w", strings.Join(res.Units, ", "), err)
	}
	s.log().Info("restarted the units of changed secrets", "units", strings.Join(restarted, ","), "secrets", strings.Join(res.Changed, ","))
	return nil
}
