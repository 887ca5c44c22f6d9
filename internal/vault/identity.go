package vault

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"

	"github.com/homelab-infra/homelab-infra/internal/securefile"
	"github.com/homelab-infra/homelab-infra/internal/vault/bootstrap"
)

// HasIdentity reports whether the machine can log in without help: it kept
// a secret_id, or a bootstrap file waits to be unwrapped.
func (c *Client) HasIdentity() bool {
	for _, p := range []string{c.secretIDFile(), c.bootstrapFile()} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

func (c *Client) bootstrapFile() string {
	if c.cfg.BootstrapFile != "" {
		return c.cfg.BootstrapFile
	}
	return bootstrap.Path
}

// secretID returns the secret_id to log in with: from a bootstrap file
// waiting to be unwrapped (it is newer than any kept secret_id: an operator
// put it there), else the kept one.
func (c *Client) secretID(ctx context.Context) (string, error) {
	b, err := os.ReadFile(c.bootstrapFile())
	switch {
	case err == nil:
		return c.unwrap(ctx, b)
	case !errors.Is(err, os.ErrNotExist):
		return "", fail(Identity, "cannot read the bootstrap file %s: %w", c.bootstrapFile(), err)
	}
	b, err = os.ReadFile(c.secretIDFile())
	switch {
	case err == nil:
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
		return "", fail(Identity, "%s is empty: the machine has lost its Vault identity; give it a new one with `labctl secrets bootstrap <host>`", c.secretIDFile())
	case errors.Is(err, os.ErrNotExist):
		return "", fail(Identity, "no Vault identity: neither %s nor the first-boot file %s exists. A machine gets its first secret_id from its claim's spec.secrets (run `labctl secrets bootstrap <host>` before creating it); a running one from `labctl secrets bootstrap <host> --stdout`, installed as %s",
			c.secretIDFile(), c.bootstrapFile(), c.bootstrapFile())
	default:
		return "", fail(Identity, "cannot read %s: %w", c.secretIDFile(), err)
	}
}

// unwrap checks the wrapping token in a bootstrap file, unwraps it once,
// keeps the secret_id on disk and deletes the file.
//
// Before unwrapping it asks sys/wrapping/lookup (an unauthenticated
// endpoint) where the token was made: it must wrap a secret_id of this
// machine's role, or it is left alone for its rightful owner. A token that
// lookup or unwrap calls invalid was either used already, which is Vault's
// documented tamper signal (someone else holds the secret_id), or expired.
func (c *Client) unwrap(ctx context.Context, raw []byte) (string, error) {
	path := c.bootstrapFile()
	f, err := bootstrap.Parse(raw)
	if err != nil {
		return "", fail(Identity, "the bootstrap file %s is unusable: %v; replace it with a new one from `labctl secrets bootstrap <host> --stdout`", path, err)
	}
	want := "auth/" + c.cfg.AuthMount + "/role/" + f.Role + "/secret-id"
	rctx, cancel := c.ctx(ctx)
	defer cancel()
	info, err := c.api.Logical().WriteWithContext(rctx, "sys/wrapping/lookup", map[string]any{"token": f.WrappingToken})
	if err != nil {
		if e := c.invalidWrap(err, f, path); e != nil {
			return "", e
		}
		return "", classify("look up the wrapping token", err)
	}
	got, _ := info.Data["creation_path"].(string)
	if got != want {
		return "", fail(Identity, "the wrapping token in %s was made at %q, not %q: it is not a secret_id of role %s (spec.secrets.role of this machine's claim). It was not unwrapped, so it stays usable by the machine it was made for; make one for this role with `labctl secrets bootstrap <host>`",
			path, got, want, f.Role)
	}
	// Unwrap with the wrapping token alone: a clone, so the client's own
	// token (if any) is never sent along.
	uc, err := c.api.Clone()
	if err != nil {
		return "", fail(Identity, "cannot prepare the unwrap: %w", err)
	}
	uc.SetToken(f.WrappingToken)
	c.Stats.Unwraps++
	sec, err := uc.Logical().UnwrapWithContext(rctx, "")
	if err != nil {
		if e := c.invalidWrap(err, f, path); e != nil {
			return "", e
		}
		return "", classify("unwrap the wrapping token", err)
	}
	id, _ := sec.Data["secret_id"].(string)
	accessor, _ := sec.Data["secret_id_accessor"].(string)
	if id == "" {
		return "", fail(Identity, "the wrapping token in %s wrapped no secret_id", path)
	}
	if err := securefile.MkdirAll(c.cfg.IdentityDir, 0o700); err != nil {
		return "", fail(Identity, "cannot keep the secret_id: %w", err)
	}
	if err := securefile.Write(c.secretIDFile(), []byte(id+"\n"), securefile.Root, true); err != nil {
		// The token is used up now: say so, the operator must make a new one.
		return "", fail(Identity, "unwrapped the secret_id but cannot keep it (%v): the wrapping token is used up, make a new one with `labctl secrets bootstrap <host>`", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.cfg.Log.Warn("cannot delete the used bootstrap file", "path", path, "err", err)
	}
	c.cfg.Log.Info("unwrapped the first-boot secret_id", "role", f.Role, "secretIdAccessor", accessor, "kept", c.secretIDFile())
	return id, nil
}

// invalidWrap explains Vault's answer to a wrapping token that does not
// exist (any more): nil when err is something else.
func (c *Client) invalidWrap(err error, f bootstrap.File, path string) error {
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 400 || !strings.Contains(strings.Join(re.Errors, " "), "wrapping token is not valid") {
		return nil
	}
	if !f.Expires.IsZero() && c.cfg.Now().After(f.Expires) {
		return fail(Identity, "the wrapping token in %s expired at %s, before this machine used it: make a new one with `labctl secrets bootstrap <host>` (a longer --ttl if first boot takes long)",
			path, f.Expires.UTC().Format(time.RFC3339))
	}
	return fail(Identity, "the wrapping token in %s was already unwrapped by someone else: this is Vault's tamper signal, so treat the secret_id it held as stolen. Destroy role %s's secret_ids (vault list auth/%s/role/%s/secret-id; vault write auth/%s/role/%s/secret-id-accessor/destroy secret_id_accessor=...), find out who read the user-data, then make a new token with `labctl secrets bootstrap <host>`",
		path, f.Role, c.cfg.AuthMount, f.Role, c.cfg.AuthMount, f.Role)
}

// login logs in with AppRole and caches the token.
func (c *Client) login(ctx context.Context) error {
	if c.cfg.RoleID == "" {
		return fail(Identity, "vault.roleId is empty: set services.nix-gitops.vault.roleId to the role_id of this machine's AppRole role")
	}
	sid, err := c.secretID(ctx)
	if err != nil {
		return err
	}
	auth, err := approle.NewAppRoleAuth(c.cfg.RoleID, &approle.SecretID{FromString: sid}, approle.WithMountPath(c.cfg.AuthMount))
	if err != nil {
		return fail(Identity, "cannot prepare the AppRole login: %w", err)
	}
	rctx, cancel := c.ctx(ctx)
	defer cancel()
	c.api.ClearToken()
	c.Stats.Logins++
	t0 := c.cfg.Now()
	sec, err := c.api.Auth().Login(rctx, auth)
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == 400 {
			return fail(Identity, "Vault refused the AppRole login at auth/%s (%s): the role_id (services.nix-gitops.vault.roleId) and the kept secret_id (%s) do not match a live secret_id of one role. The secret_id may have expired (the role's secret_id_ttl), been destroyed, or belong to another role; give the machine a new one with `labctl secrets bootstrap <host> --stdout`",
				c.cfg.AuthMount, strings.Join(re.Errors, "; "), c.secretIDFile())
		}
		return classify("log in with AppRole", err)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return fail(Identity, "the AppRole login returned no token")
	}
	ttl := time.Duration(sec.Auth.LeaseDuration) * time.Second
	c.tok = &token{Token: sec.Auth.ClientToken, Accessor: sec.Auth.Accessor, Issued: t0, TTL: ttl, Expires: t0.Add(ttl),
		Renewable: sec.Auth.Renewable, Policies: sec.Auth.TokenPolicies}
	c.fresh = true
	c.saveToken()
	c.cfg.Log.Info("logged in to Vault", "mount", c.cfg.AuthMount, "ttl", ttl, "renewable", sec.Auth.Renewable, "policies", strings.Join(sec.Auth.TokenPolicies, ","))
	return nil
}
