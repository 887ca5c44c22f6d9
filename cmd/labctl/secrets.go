package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/homelab-infra/homelab-infra/internal/labctl"
)

type secretsCmd struct {
	Bootstrap bootstrapCmd `cmd:"" help:"Make a machine's first Vault secret_id (response-wrapped: single use, short TTL) with your own Vault login (VAULT_ADDR, VAULT_TOKEN or ~/.vault-token, VAULT_CACERT) and write the wrapping token to the Secret its claim's spec.secrets names, for the first-boot user-data. Never prints the token, except with --stdout."`
}

type bootstrapCmd struct {
	Host       string        `arg:"" help:"The claim's name or host name."`
	TTL        time.Duration `default:"1h" help:"How long the wrapping token stays valid: long enough for the VM to be created and to boot."`
	AuthMount  string        `default:"approle" help:"Where AppRole is mounted in Vault."`
	Stdout     bool          `help:"Print the first-boot file instead of writing the Secret, for a machine that is already running (install it as /var/lib/nix-gitops/vault/bootstrap.json, mode 0600)."`
	Kubeconfig string        `type:"path" env:"KUBECONFIG" help:"Kubeconfig of the cluster the claims live in."`
}

func (c *bootstrapCmd) Run(g *globals) error {
	ctx := context.Background()
	vc, err := operatorVault()
	if err != nil {
		return err
	}
	b := labctl.Bootstrap{Host: c.Host, TTL: c.TTL, AuthMount: c.AuthMount, Vault: vc}
	if c.Stdout {
		b.Stdout = g.Stdout
	} else {
		kube, err := kubeClient(c.Kubeconfig)
		if err != nil {
			return err
		}
		b.Kube = kube
	}
	root, err := g.Root()
	if err != nil {
		return err
	}
	r, err := labctl.SecretsBootstrap(ctx, root, b)
	if err != nil {
		return err
	}
	r.Print(g.Stderr, c.Stdout)
	return nil
}

// operatorVault is the operator's own Vault login, as the vault CLI finds
// it: VAULT_ADDR and friends, VAULT_TOKEN, else ~/.vault-token.
func operatorVault() (*api.Client, error) {
	c, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		return nil, fmt.Errorf("cannot make a Vault client (VAULT_ADDR, VAULT_CACERT): %w", err)
	}
	if c.Token() == "" {
		if home, err := os.UserHomeDir(); err == nil {
			if b, err := os.ReadFile(filepath.Join(home, ".vault-token")); err == nil {
				c.SetToken(strings.TrimSpace(string(b)))
			}
		}
	}
	if c.Token() == "" {
		return nil, fmt.Errorf("no Vault login: run `vault login` (or set VAULT_TOKEN) with a token that may write secret-ids of the machine's AppRole role")
	}
	return c, nil
}
