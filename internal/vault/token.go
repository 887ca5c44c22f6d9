package vault

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/securefile"
)

// token is the cached login: the token file's content.
type token struct {
	Token     string        `json:"token"`
	Accessor  string        `json:"accessor,omitempty"`
	Issued    time.Time     `json:"issued"`
	TTL       time.Duration `json:"ttl"` // the TTL the login gave: renewals ask for as much again
	Expires   time.Time     `json:"expires"`
	Renewable bool          `json:"renewable"`
	Policies  []string      `json:"policies,omitempty"`
}

// TokenInfo is what may be shown of the token: never the token.
type TokenInfo struct {
	Accessor  string
	Expires   time.Time
	Renewable bool
	Policies  []string
	// How is how this call got it: "cached", "renewed" or "login".
	How string
}

// Login makes sure the client holds a token that stays valid for more than
// a third of its TTL: the cached one (memory, then the token file), renewed
// once a third of its TTL is left, or a new AppRole login when there is
// none, it expired, renewal cannot extend it (its max TTL) or Vault refused
// it. A valid token costs no request at all.
func (c *Client) Login(ctx context.Context) (TokenInfo, error) {
	how, err := c.ensure(ctx)
	if err != nil {
		return TokenInfo{}, err
	}
	t := c.tok
	return TokenInfo{Accessor: t.Accessor, Expires: t.Expires, Renewable: t.Renewable, Policies: t.Policies, How: how}, nil
}

func (c *Client) ensure(ctx context.Context) (string, error) {
	if c.tok == nil {
		c.tok = c.loadToken()
	}
	// A bootstrap file an operator put there replaces the identity.
	if _, err := os.Stat(c.bootstrapFile()); err == nil {
		return "login", c.login(ctx)
	}
	now := c.cfg.Now()
	if t := c.tok; t != nil && t.Expires.After(now) {
		left := t.Expires.Sub(now)
		if left*3 > t.TTL {
			c.api.SetToken(t.Token)
			return "cached", nil
		}
		if t.Renewable {
			ok, err := c.renew(ctx)
			if err != nil && Retryable(err) {
				// Vault cannot be reached, but the token still works for
				// a while: let the reads find out whether Vault is back.
				c.api.SetToken(t.Token)
				return "cached", nil
			}
			if ok {
				return "renewed", nil
			}
		}
	}
	return "login", c.login(ctx)
}

// renew extends the token by its TTL. ok is false when Vault refused, or
// could extend it by less than a third of its TTL (its max TTL is near): a
// new login is then due.
func (c *Client) renew(ctx context.Context) (bool, error) {
	t := c.tok
	rctx, cancel := c.ctx(ctx)
	defer cancel()
	c.api.SetToken(t.Token)
	c.Stats.Renewals++
	now := c.cfg.Now()
	sec, err := c.api.Auth().Token().RenewSelfWithContext(rctx, int(t.TTL.Seconds()))
	if err != nil {
		err = classify("renew the Vault token", err)
		c.cfg.Log.Info("cannot renew the Vault token; logging in again", "err", err)
		return false, err
	}
	if sec == nil || sec.Auth == nil {
		return false, nil
	}
	got := time.Duration(sec.Auth.LeaseDuration) * time.Second
	if got*3 <= t.TTL {
		c.cfg.Log.Info("the Vault token is near its max TTL; logging in again", "renewedFor", got)
		return false, nil
	}
	t.Expires = now.Add(got)
	c.fresh = true
	c.saveToken()
	c.cfg.Log.Info("renewed the Vault token", "for", got)
	return true, nil
}

// withToken runs fn with a valid token. A 403 with a token this process did
// not just get may mean the cached token was revoked: ask Vault about the
// token itself, and if it is dead log in again and run fn once more.
func (c *Client) withToken(ctx context.Context, fn func() error) error {
	if _, err := c.ensure(ctx); err != nil {
		return err
	}
	err := fn()
	if KindOf(err) != Denied || c.fresh {
		return err
	}
	rctx, cancel := c.ctx(ctx)
	_, lerr := c.api.Auth().Token().LookupSelfWithContext(rctx)
	cancel()
	if KindOf(classify("", lerr)) != Denied {
		return err // the token is fine: the policy said no
	}
	c.cfg.Log.Info("the cached Vault token is no longer valid; logging in again")
	c.dropToken()
	if err := c.login(ctx); err != nil {
		return err
	}
	return fn()
}

func (c *Client) loadToken() *token {
	if c.cfg.TokenFile == "" {
		return nil
	}
	b, err := os.ReadFile(c.cfg.TokenFile)
	if err != nil {
		return nil
	}
	var t token
	if json.Unmarshal(b, &t) != nil || t.Token == "" {
		return nil
	}
	return &t
}

func (c *Client) saveToken() {
	if c.cfg.TokenFile == "" || c.tok == nil {
		return
	}
	b, err := json.Marshal(c.tok)
	if err == nil {
		dir := filepath.Dir(c.cfg.TokenFile)
		// The folder may hold the secrets folder too: it stays traversable,
		// the file is root's alone.
		if err = os.MkdirAll(dir, 0o755); err == nil {
			if err = securefile.OnTmpfs(dir); err == nil {
				err = securefile.Write(c.cfg.TokenFile, b, securefile.Root, false)
			}
		}
	}
	if err != nil {
		// Not fatal: the next run logs in again.
		c.cfg.Log.Warn("cannot cache the Vault token; the next run logs in again", "err", err)
	}
}

func (c *Client) dropToken() {
	c.tok = nil
	c.api.ClearToken()
	if c.cfg.TokenFile != "" {
		_ = os.Remove(c.cfg.TokenFile)
	}
}
