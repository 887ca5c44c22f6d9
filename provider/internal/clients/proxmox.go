// Package clients turns a managed resource's ProviderConfig into bpg's
// configured Terraform provider, which Upjet's no-fork controllers call
// in-process for every Observe, Create, Update and Delete.
package clients

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/crossplane/crossplane-runtime/v2/pkg/resource"
	"github.com/crossplane/upjet/v2/pkg/terraform"
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"
	tfsdk "github.com/hashicorp/terraform-plugin-sdk/v2/terraform"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-infra/homelab-infra/provider/apis/v1beta1"
)

// The keys of the credentials JSON (crossplane/provider/providerconfig.yaml).
// One flat object, so a Secret made with --from-file holds it as it is.
const (
	keyEndpoint      = "endpoint"
	keyAPIToken      = "api_token"
	keyInsecure      = "insecure"
	keyMinTLS        = "min_tls"
	keySSHUsername   = "ssh_username"
	keySSHPassword   = "ssh_password"
	keySSHPrivateKey = "ssh_private_key"
)

// Credentials are the ProviderConfig's Secret, decoded.
type Credentials struct {
	Endpoint      string
	APIToken      string
	Insecure      bool
	MinTLS        string
	SSHUsername   string
	SSHPassword   string
	SSHPrivateKey string
}

// ParseCredentials reads the Secret's JSON. Unknown keys are refused, so a
// misspelt key is named instead of silently ignored; no value is ever put in
// an error.
func ParseCredentials(data []byte) (Credentials, error) {
	raw := map[string]any{}
	if err := json.Unmarshal(data, &raw); err != nil {
		return Credentials{}, errors.New("cannot parse the Proxmox credentials: the Secret's key must hold one flat JSON object (endpoint, api_token, insecure, ssh_username, ssh_private_key)")
	}
	var c Credentials
	str := func(k string) (string, error) {
		switch v := raw[k].(type) {
		case nil:
			return "", nil
		case string:
			return v, nil
		default:
			return "", fmt.Errorf("cannot parse the Proxmox credentials: %q must be a string", k)
		}
	}
	var err error
	for k, dst := range map[string]*string{
		keyEndpoint: &c.Endpoint, keyAPIToken: &c.APIToken, keyMinTLS: &c.MinTLS,
		keySSHUsername: &c.SSHUsername, keySSHPassword: &c.SSHPassword, keySSHPrivateKey: &c.SSHPrivateKey,
	} {
		if *dst, err = str(k); err != nil {
			return Credentials{}, err
		}
	}
	switch v := raw[keyInsecure].(type) {
	case nil:
	case bool:
		c.Insecure = v
	case string:
		if c.Insecure, err = strconv.ParseBool(v); err != nil && v != "" {
			return Credentials{}, fmt.Errorf("cannot parse the Proxmox credentials: %q must be true or false", keyInsecure)
		}
	default:
		return Credentials{}, fmt.Errorf("cannot parse the Proxmox credentials: %q must be true or false", keyInsecure)
	}
	for k := range raw {
		switch k {
		case keyEndpoint, keyAPIToken, keyInsecure, keyMinTLS, keySSHUsername, keySSHPassword, keySSHPrivateKey:
		default:
			return Credentials{}, fmt.Errorf("cannot parse the Proxmox credentials: unknown key %q (known: endpoint, api_token, insecure, min_tls, ssh_username, ssh_password, ssh_private_key)", k)
		}
	}
	if c.Endpoint == "" || c.APIToken == "" {
		return Credentials{}, errors.New("cannot parse the Proxmox credentials: endpoint and api_token are required")
	}
	return c, nil
}

// Configuration is bpg's provider block for these credentials.
func (c Credentials) Configuration() map[string]any {
	cfg := map[string]any{
		"endpoint":  c.Endpoint,
		"api_token": c.APIToken,
		"insecure":  c.Insecure,
	}
	if c.MinTLS != "" {
		cfg["min_tls"] = c.MinTLS
	}
	ssh := map[string]any{}
	for k, v := range map[string]string{"username": c.SSHUsername, "password": c.SSHPassword, "private_key": c.SSHPrivateKey} {
		if v != "" {
			ssh[k] = v
		}
	}
	if len(ssh) > 0 {
		cfg["ssh"] = []any{ssh}
	}
	return cfg
}

// Configurer makes bpg's configured provider (its API and SSH clients) for a
// set of credentials, once: every reconcile with the same credentials reuses
// it, and with it the HTTP connections to Proxmox, instead of a new TLS
// handshake per reconcile.
type Configurer struct {
	// New returns a fresh, unconfigured bpg provider.
	New func() *schema.Provider

	mu      sync.Mutex
	byCreds map[[32]byte]any
}

// Meta returns bpg's provider meta for the credentials.
func (cf *Configurer) Meta(ctx context.Context, c Credentials) (any, error) {
	b, _ := json.Marshal(c)
	key := sha256.Sum256(b)
	cf.mu.Lock()
	defer cf.mu.Unlock()
	if m, ok := cf.byCreds[key]; ok {
		return m, nil
	}
	p := cf.New()
	if diags := p.Configure(ctx, tfsdk.NewResourceConfigRaw(c.Configuration())); diags.HasError() {
		for _, d := range diags {
			return nil, fmt.Errorf("cannot configure bpg's Proxmox provider: %s %s", d.Summary, d.Detail)
		}
	}
	if cf.byCreds == nil {
		cf.byCreds = map[[32]byte]any{}
	}
	cf.byCreds[key] = p.Meta()
	return cf.byCreds[key], nil
}

// TerraformSetupBuilder reads the managed resource's ProviderConfig and
// credentials, records the usage, and hands Upjet bpg's configured provider.
func TerraformSetupBuilder(cf *Configurer) terraform.SetupFn {
	return func(ctx context.Context, c client.Client, mg resource.Managed) (terraform.Setup, error) {
		lm, ok := mg.(resource.LegacyManaged)
		if !ok {
			return terraform.Setup{}, errors.New("managed resource is not cluster-scoped")
		}
		ref := lm.GetProviderConfigReference()
		if ref == nil {
			return terraform.Setup{}, errors.New("no providerConfigRef given")
		}
		pc := &v1beta1.ProviderConfig{}
		if err := c.Get(ctx, types.NamespacedName{Name: ref.Name}, pc); err != nil {
			return terraform.Setup{}, fmt.Errorf("cannot get ProviderConfig %s: %w", ref.Name, err)
		}
		t := resource.NewLegacyProviderConfigUsageTracker(c, &v1beta1.ProviderConfigUsage{})
		if err := t.Track(ctx, lm); err != nil {
			return terraform.Setup{}, fmt.Errorf("cannot track the use of ProviderConfig %s: %w", ref.Name, err)
		}
		data, err := resource.CommonCredentialExtractor(ctx, pc.Spec.Credentials.Source, c, pc.Spec.Credentials.CommonCredentialSelectors)
		if err != nil {
			return terraform.Setup{}, fmt.Errorf("cannot read the credentials of ProviderConfig %s: %w", ref.Name, err)
		}
		creds, err := ParseCredentials(data)
		if err != nil {
			return terraform.Setup{}, fmt.Errorf("ProviderConfig %s: %w", ref.Name, err)
		}
		meta, err := cf.Meta(ctx, creds)
		if err != nil {
			return terraform.Setup{}, err
		}
		return terraform.Setup{Configuration: creds.Configuration(), Meta: meta}, nil
	}
}
