// Package vault is the machine's side of Vault (design D7): it logs in with
// AppRole, keeps its identity and token safe, and reads what the machine's
// Nix config declares (KV v2 fields, PKI certificates), through the official
// client (github.com/hashicorp/vault/api and api/auth/approle).
//
// Identity, and where each part lives:
//
//	bootstrap file   <bootstrap.Path>, disk, root 0600, written by cloud-init
//	                 at first boot: a response-wrapped, single-use token. The
//	                 agent looks it up (it must wrap a secret_id of its own
//	                 role), unwraps it once and deletes the file.
//	secret_id        <identity dir>/secret-id, disk, root 0600 in a 0700
//	                 folder: what the machine needs to log in again after a
//	                 reboot. Never logged, never in state.json.
//	token            the token file (tmpfs, root 0600) and memory: reused
//	                 while it has more than a third of its TTL left, renewed
//	                 after that, and replaced by a new login when renewal
//	                 cannot extend it (max TTL) or Vault refuses it.
//
// The client ignores VAULT_* environment variables: the agent's config is
// the only input.
package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// Config is how the machine reaches Vault and who it is there.
type Config struct {
	// Address is Vault's URL, e.g. https://vault.lab.home.arpa:8200.
	Address string
	// CAFile is a PEM bundle to verify Vault's certificate with ("" for the
	// system's roots).
	CAFile string
	// RoleID is the AppRole role_id (not secret; from the Nix config).
	RoleID string
	// AuthMount is where AppRole is mounted ["approle"].
	AuthMount string
	// IdentityDir keeps the secret_id, root only, on disk.
	IdentityDir string
	// TokenFile caches the token between runs, on tmpfs.
	TokenFile string
	// BootstrapFile is the first-boot wrapping token [bootstrap.Path].
	BootstrapFile string
	// Timeout bounds each request [30s].
	Timeout time.Duration
	// Now is the clock [time.Now].
	Now func() time.Time
	// Log gets one line per login, renewal and unwrap (never a secret).
	Log *slog.Logger
}

// Client is a logged-in (or about to be) connection to Vault.
type Client struct {
	cfg Config
	api *api.Client
	tok *token
	// fresh is true once this process logged in or renewed; a 403 with a
	// fresh token is the policy's answer, not a stale token's.
	fresh bool
	// Stats count what this client did, for status and benchmarks.
	Stats Stats
}

// Stats count the client's calls to Vault by purpose.
type Stats struct {
	Logins, Renewals, Unwraps, Reads, Issues int
}

// New makes a client; it does not talk to Vault yet.
func New(cfg Config) (*Client, error) {
	if cfg.Address == "" {
		return nil, errors.New("vault.address is empty: set services.nix-gitops.vault.address")
	}
	if cfg.AuthMount == "" {
		cfg.AuthMount = "approle"
	}
	cfg.AuthMount = strings.Trim(cfg.AuthMount, "/")
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	// A config of our own, not api.DefaultConfig(): that one reads VAULT_ADDR,
	// VAULT_SKIP_VERIFY and friends from the environment. Retries are the
	// caller's (with its back-off), not the client's.
	ac := &api.Config{Address: cfg.Address, HttpClient: &http.Client{Transport: &http.Transport{
		Proxy: nil, TLSHandshakeTimeout: 10 * time.Second, IdleConnTimeout: 90 * time.Second, MaxIdleConnsPerHost: 2,
	}}, Timeout: cfg.Timeout, MaxRetries: 0}
	if cfg.CAFile != "" {
		if err := ac.ConfigureTLS(&api.TLSConfig{CACert: cfg.CAFile}); err != nil {
			return nil, fmt.Errorf("vault.caFile %s: %w", cfg.CAFile, err)
		}
	}
	c, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("cannot make a Vault client for %s: %w", cfg.Address, err)
	}
	// NewClient still takes VAULT_TOKEN and VAULT_NAMESPACE from the
	// environment: drop them.
	c.ClearToken()
	c.ClearNamespace()
	c.SetWrappingLookupFunc(func(string, string) string { return "" })
	return &Client{cfg: cfg, api: c}, nil
}

// Kind says what kind of failure an Error is, which decides what helps.
type Kind int

const (
	// Unreachable: no answer, or Vault sealed or failing (5xx). Retrying
	// with back-off helps.
	Unreachable Kind = iota + 1
	// Denied: Vault's policy refuses the token this path.
	Denied
	// NotFound: nothing at the path (or a field missing from it).
	NotFound
	// Refused: Vault answered the request is wrong (a PKI role refusing a
	// name, say).
	Refused
	// Identity: the machine cannot log in; an operator must act (a new
	// wrapping token, a fixed role_id). Retrying does not help.
	Identity
)

func (k Kind) String() string {
	return map[Kind]string{Unreachable: "unreachable", Denied: "denied", NotFound: "not found", Refused: "refused", Identity: "identity"}[k]
}

// Error is a failure with its kind. Its message never holds a secret.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// KindOf is err's Kind, or 0 when err is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// Retryable reports whether trying again later may help.
func Retryable(err error) bool { return KindOf(err) == Unreachable }

func fail(k Kind, format string, a ...any) error {
	return &Error{Kind: k, Err: fmt.Errorf(format, a...)}
}

// classify turns a client error into an *Error for op (what was attempted).
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		msg := strings.Join(re.Errors, "; ")
		if msg == "" {
			msg = http.StatusText(re.StatusCode)
		}
		switch {
		case re.StatusCode == http.StatusForbidden:
			return fail(Denied, "cannot %s: permission denied by Vault (HTTP 403: %s)", op, msg)
		case re.StatusCode == http.StatusNotFound:
			return fail(NotFound, "cannot %s: Vault has nothing there (HTTP 404)", op)
		case re.StatusCode >= 500:
			return fail(Unreachable, "cannot %s: Vault is unavailable (HTTP %d: %s)", op, re.StatusCode, msg)
		default:
			return fail(Refused, "cannot %s: Vault refused it (HTTP %d: %s)", op, re.StatusCode, msg)
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fail(Unreachable, "cannot %s: %w", op, err)
	}
	return fail(Unreachable, "cannot %s: cannot reach Vault: %s", op, stripURLCreds(err.Error()))
}

// stripURLCreds keeps a transport error's message short and free of the
// request URL's query (which never holds a secret here, but keeps it so).
func stripURLCreds(s string) string {
	if i := strings.Index(s, "?"); i >= 0 {
		if j := strings.IndexAny(s[i:], " \""); j >= 0 {
			return s[:i] + s[i+j:]
		}
		return s[:i]
	}
	return s
}

func (c *Client) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.Timeout)
}

func (c *Client) secretIDFile() string { return filepath.Join(c.cfg.IdentityDir, "secret-id") }
