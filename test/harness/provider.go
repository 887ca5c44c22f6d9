package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The pins of the provider stack hack/build-provider.sh builds: the
// provider reads them from its environment to write each workspace's
// required_providers and to find terraform.
const (
	TerraformVersion      = "1.5.7"
	TerraformProviderName = "bpg/proxmox"
	BPGVersion            = "0.111.1"
)

// ProviderConfig runs the real provider-proxmox-bpg (Upjet, terraform-CLI
// mode) against the stack: every EnvironmentVM and EnvironmentFile goes
// through terraform and bpg's Terraform provider to whatever Proxmox API its
// credentials point at.
type ProviderConfig struct {
	// Bin is the folder hack/build-provider.sh prints: provider, terraform,
	// plugins/ (a terraform filesystem mirror holding bpg) and crds/.
	Bin string
	// ProviderConfigFile is the ProviderConfig to apply, as users apply it
	// (crossplane/provider/providerconfig.yaml).
	ProviderConfigFile string
	// Credentials is the JSON the ProviderConfig's Secret holds; the harness
	// creates the Secret its secretRef names, with this under its key.
	Credentials []byte
	// Poll is the provider's drift-check interval (--poll); 0 means 20s.
	Poll time.Duration
	// MaxReconcileRate is --max-reconcile-rate (and the controllers'
	// concurrency); 0 means 4.
	MaxReconcileRate int
}

// usageCRDs are the provider's ProviderConfigUsage kinds: not among the
// resource CRDs of PROVIDER_CRDS_DIR, but the provider's usage tracker
// writes one per managed resource and fails without them.
var usageCRDs = []string{
	"proxmoxbpg.crossplane.io_providerconfigusages.yaml",
	"proxmoxbpg.m.crossplane.io_providerconfigusages.yaml",
}

// startProvider writes the terraform CLI config, starts the provider, and
// creates the credentials Secret and the ProviderConfig.
func (cp *ControlPlane) startProvider(ctx context.Context) error {
	pc := cp.cfg.Provider
	if pc == nil {
		return nil
	}
	for _, b := range []string{"provider", "terraform", "plugins"} {
		if _, err := os.Stat(filepath.Join(pc.Bin, b)); err != nil {
			return fmt.Errorf("cannot find %s in PROVIDER_BIN %q (run hack/build-provider.sh): %w", b, pc.Bin, err)
		}
	}
	// From packages, Crossplane installs these from the provider's package.
	for _, f := range usageCRDs {
		if cp.cfg.Packages != nil {
			break
		}
		if _, err := cp.ApplyFile(ctx, filepath.Join(pc.Bin, "crds", f)); err != nil {
			return err
		}
	}

	home := filepath.Join(cp.Dir, "provider")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("cannot create the provider's folder: %w", err)
	}
	// Upjet's workspaces live in $TMPDIR, and terraform's plugins listen on
	// unix sockets there: keep the path short, a socket path has at most
	// 107 bytes (a stack in a test's TempDir exceeds it: "bind: invalid
	// argument").
	tmp, err := os.MkdirTemp("", "upjet-")
	if err != nil {
		return fmt.Errorf("cannot create the provider's TMPDIR: %w", err)
	}
	cp.scratch = append(cp.scratch, tmp)
	// terraform init installs providers from the mirror only: `direct` is
	// excluded for every provider, so nothing is ever fetched.
	rc := fmt.Sprintf(`provider_installation {
  filesystem_mirror {
    path    = %q
    include = ["registry.terraform.io/%s"]
  }
  direct {
    exclude = ["registry.terraform.io/*/*"]
  }
}
`, filepath.Join(pc.Bin, "plugins"), TerraformProviderName)
	rcPath := filepath.Join(home, "terraformrc")
	if err := os.WriteFile(rcPath, []byte(rc), 0o600); err != nil {
		return fmt.Errorf("cannot write the terraform CLI config: %w", err)
	}

	port, err := FreePort()
	if err != nil {
		return err
	}
	every, rate := pc.Poll, pc.MaxReconcileRate
	if every == 0 {
		every = 20 * time.Second
	}
	if rate == 0 {
		rate = 4
	}
	metrics := "127.0.0.1:" + strconv.Itoa(port)
	env := []string{
		"HOME=" + home, // bpg writes $HOME/.ssh/known_hosts
		"PATH=" + pc.Bin + ":/usr/local/bin:/usr/bin:/bin",
		"TMPDIR=" + tmp, // Upjet's workspaces: $TMPDIR/<uid>
		"KUBECONFIG=" + cp.Kubeconfig,
		"TERRAFORM_VERSION=" + TerraformVersion,
		"TERRAFORM_PROVIDER_SOURCE=" + TerraformProviderName,
		"TERRAFORM_PROVIDER_VERSION=" + BPGVersion,
		"TF_CLI_CONFIG_FILE=" + rcPath,
		// No panicwrap fork and no checkpoint call home.
		"TF_FORK=0", "CHECKPOINT_DISABLE=1",
		// Terraform's and bpg's warnings and errors, for a failure's tail.
		"TF_LOG=WARN", "TF_LOG_PATH=" + filepath.Join(cp.logDir(), "terraform.log"),
	}
	args := []string{
		"--debug",
		"--poll=" + every.String(), "--sync=1m",
		"--max-reconcile-rate=" + strconv.Itoa(rate),
		// An empty certs dir turns the webhooks off; leader election is
		// off by default.
		"--certs-dir=",
		"--metrics-bind-address=" + metrics,
	}
	cp.extraLogs = append(cp.extraLogs, filepath.Join(cp.logDir(), "terraform.log"))
	p, err := cp.start("provider-proxmox-bpg", env, filepath.Join(pc.Bin, "provider"), args...)
	if err != nil {
		return err
	}
	cp.Provider = p
	err = poll(ctx, 60*time.Second, func(ctx context.Context) (bool, error) {
		return httpOK(ctx, http.DefaultClient, "http://"+metrics+"/metrics")
	}, p)
	if err != nil {
		return fmt.Errorf("the provider is not serving: %w", err)
	}
	return cp.applyProviderConfig(ctx, pc)
}

// applyProviderConfig creates the Secret the ProviderConfig names and
// applies the ProviderConfig itself, both as a user would. On a stack that
// installs from packages only the Secret is made here.
func (cp *ControlPlane) applyProviderConfig(ctx context.Context, pc *ProviderConfig) error {
	objs, err := ReadObjects(pc.ProviderConfigFile)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if o.GetKind() != "ProviderConfig" {
			continue
		}
		ref, _, _ := unstructured.NestedMap(o.Object, "spec", "credentials", "secretRef")
		ns, name, key := fmt.Sprint(ref["namespace"]), fmt.Sprint(ref["name"]), fmt.Sprint(ref["key"])
		if ref == nil || ns == "" || name == "" || key == "" {
			return fmt.Errorf("%s: ProviderConfig %s names no credentials Secret (spec.credentials.secretRef namespace, name, key)", pc.ProviderConfigFile, o.GetName())
		}
		nsObj := &corev1.Namespace{}
		nsObj.SetName(ns)
		if err := cp.Client.Create(ctx, nsObj); client.IgnoreAlreadyExists(err) != nil {
			return fmt.Errorf("cannot create namespace %s: %w", ns, err)
		}
		sec := &corev1.Secret{Data: map[string][]byte{key: pc.Credentials}}
		sec.SetNamespace(ns)
		sec.SetName(name)
		if err := cp.Client.Create(ctx, sec); err != nil {
			return fmt.Errorf("cannot create the credentials Secret %s/%s: %w", ns, name, err)
		}
		if cp.cfg.Packages != nil {
			// Its kind comes with the provider's package, and the user (or
			// Flux) applies it once that is installed; the Secret is the
			// out-of-band part.
			continue
		}
		if err := cp.Apply(ctx, o); err != nil {
			return err
		}
	}
	return nil
}
