package labctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/vault/api"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/machine"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/vault/bootstrap"
)

// Bootstrap is what `labctl secrets bootstrap HOST` does: make a new
// secret_id for the machine's AppRole role with the operator's own Vault
// login, response-wrapped (single use, short TTL), and hand the wrapping
// token to the machine: into the Secret its claim's spec.secrets names
// (the function puts it in the first-boot user-data), or, with Stdout, as
// the first-boot file for a machine that is already running.
type Bootstrap struct {
	// Host is the claim's name or host name.
	Host string
	// TTL is how long the wrapping token stays valid [1h]: enough for the
	// claim to be applied, the VM cloned and booted.
	TTL time.Duration
	// AuthMount is where AppRole is mounted ["approle"].
	AuthMount string
	// Vault is the operator's logged-in client.
	Vault *api.Client
	// Kube writes the Secret; nil with Stdout.
	Kube kubernetes.Interface
	// Stdout, when set, gets the first-boot file instead of the cluster.
	Stdout io.Writer
}

// BootstrapResult says what was made, never the token.
type BootstrapResult struct {
	Claim    *repo.Claim
	Role     string
	RoleID   string
	Secret   string // namespace/name key, "" with Stdout
	Expires  time.Time
	Accessor string // the wrapping token's accessor
	Warnings []string
}

// SecretsBootstrap runs b for the repo at root.
func SecretsBootstrap(ctx context.Context, root string, b Bootstrap) (*BootstrapResult, error) {
	if b.TTL <= 0 {
		b.TTL = time.Hour
	}
	if b.AuthMount == "" {
		b.AuthMount = "approle"
	}
	cs, err := findClaims(root, []string{b.Host}, nil)
	if err != nil {
		return nil, err
	}
	c := cs[0]
	if c.Spec.Secrets == nil {
		return nil, fmt.Errorf("%s: the claim has no spec.secrets; add spec.secrets.role (the machine's AppRole role) and spec.secrets.wrappingTokenSecretRef.name first", c.Where())
	}
	if errs := machine.Validate(c.Spec, nil); len(errs) > 0 {
		return nil, fmt.Errorf("%s: %w", c.Where(), errs)
	}
	role := c.Spec.Secrets.Role
	res := &BootstrapResult{Claim: c, Role: role}
	rolePath := "auth/" + b.AuthMount + "/role/" + role

	// The role must let the machine log in again after a reboot with the
	// one secret_id it keeps: unlimited uses, and no expiry (or a long one).
	if sec, err := b.Vault.Logical().ReadWithContext(ctx, rolePath); err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("cannot read %s to check its settings: %v", rolePath, err))
	} else if sec == nil {
		return nil, fmt.Errorf("Vault has no AppRole role %q at %s: create it (vault write %s token_policies=...) or fix %s's spec.secrets.role", role, rolePath, rolePath, c.Where())
	} else {
		if n := number(sec.Data["secret_id_num_uses"]); n != 0 {
			return nil, fmt.Errorf("role %s has secret_id_num_uses=%d: the machine keeps one secret_id to log in again after a reboot, so it needs unlimited uses; set secret_id_num_uses=0 (vault write %s secret_id_num_uses=0)", role, n, rolePath)
		}
		if ttl := number(sec.Data["secret_id_ttl"]); ttl != 0 && time.Duration(ttl)*time.Second < 30*24*time.Hour {
			res.Warnings = append(res.Warnings, fmt.Sprintf("role %s has secret_id_ttl=%s: after that the machine can no longer log in and needs a new bootstrap; 0 (no expiry) or months are usual", role, time.Duration(ttl)*time.Second))
		}
	}
	if sec, err := b.Vault.Logical().ReadWithContext(ctx, rolePath+"/role-id"); err == nil && sec != nil {
		res.RoleID, _ = sec.Data["role_id"].(string)
	}

	// A wrapped secret_id: Vault returns only the wrapping token.
	wc, err := b.Vault.Clone()
	if err != nil {
		return nil, fmt.Errorf("cannot prepare the Vault request: %w", err)
	}
	wc.SetToken(b.Vault.Token())
	ttl := b.TTL
	wc.SetWrappingLookupFunc(func(string, string) string { return ttl.String() })
	meta, _ := json.Marshal(map[string]string{"host": c.Spec.Hostname, "made-by": "labctl secrets bootstrap"})
	sec, err := wc.Logical().WriteWithContext(ctx, rolePath+"/secret-id", map[string]any{"metadata": string(meta)})
	if err != nil {
		return nil, fmt.Errorf("cannot make a secret_id for role %s: %w", role, err)
	}
	if sec == nil || sec.WrapInfo == nil || sec.WrapInfo.Token == "" {
		return nil, errors.New("vault returned an unwrapped answer: refusing to handle a bare secret_id")
	}
	w := sec.WrapInfo
	res.Expires = w.CreationTime.Add(time.Duration(w.TTL) * time.Second).UTC()
	res.Accessor = w.Accessor

	if b.Stdout != nil {
		f, err := bootstrap.Marshal(bootstrap.File{Role: role, WrappingToken: w.Token, Expires: res.Expires})
		if err != nil {
			return nil, err
		}
		_, err = fmt.Fprintf(b.Stdout, "%s\n", f)
		return res, err
	}
	if b.Kube == nil {
		return nil, errors.New("no cluster to write the Secret to")
	}
	ref := c.Spec.Secrets.WrappingTokenSecretRef
	ns := orDefault(ref.Namespace, c.Namespace)
	key := orDefault(ref.Key, machine.DefaultWrappingTokenKey)
	want := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: ref.Name, Namespace: ns,
			Labels:      map[string]string{compose.LabelHostname: c.Spec.Hostname},
			Annotations: map[string]string{bootstrap.ExpiresAnnotation: res.Expires.Format(time.RFC3339), "homelab.dev/vault-role": role},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{key: []byte(w.Token)},
	}
	secrets := b.Kube.CoreV1().Secrets(ns)
	cur, err := secrets.Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = secrets.Create(ctx, want, metav1.CreateOptions{FieldManager: "labctl"})
	case err == nil:
		cur.Labels, cur.Annotations, cur.Data, cur.StringData = want.Labels, want.Annotations, want.Data, nil
		_, err = secrets.Update(ctx, cur, metav1.UpdateOptions{FieldManager: "labctl"})
	}
	if err != nil {
		return nil, fmt.Errorf("cannot write Secret %s/%s: %w", ns, ref.Name, err)
	}
	res.Secret = ns + "/" + ref.Name + " key " + key
	return res, nil
}

// number reads a JSON number Vault returned.
func number(v any) int64 {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return i
	case float64:
		return int64(n)
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}

// Print tells the operator what was made and what to do next.
func (r *BootstrapResult) Print(w io.Writer, stdout bool) {
	for _, x := range r.Warnings {
		fmt.Fprintln(w, "warning:", x)
	}
	switch {
	case stdout:
		fmt.Fprintf(w, "printed the first-boot file for %s (role %s, single use, expires %s): install it on the machine as %s, mode 0600, e.g.\n  labctl secrets bootstrap %s --stdout | ssh %s 'sudo install -D -m 0600 /dev/stdin %s'\n",
			r.Claim.Spec.Hostname, r.Role, r.Expires.Format(time.RFC3339), bootstrap.Path, r.Claim.Spec.Hostname, r.Claim.Spec.Hostname, bootstrap.Path)
	default:
		fmt.Fprintf(w, "wrote Secret %s: a wrapping token for role %s, single use, expires %s (accessor %s)\n",
			r.Secret, r.Role, r.Expires.Format(time.RFC3339), r.Accessor)
		fmt.Fprintf(w, "next: apply the claim %s so the machine is created (and boots) before then\n", filepath.ToSlash(r.Claim.Where()))
	}
	if r.RoleID != "" {
		fmt.Fprintf(w, "the role's role_id (set services.nix-gitops.vault.roleId in %s/%s): %s\n", repo.HostsDir, r.Claim.Spec.Hostname, r.RoleID)
	}
}
