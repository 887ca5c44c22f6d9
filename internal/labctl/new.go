package labctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/homelab-infra/homelab-infra/internal/machine"
	"github.com/homelab-infra/homelab-infra/internal/repo"
)

// NewMachine is what `labctl new machine` scaffolds.
type NewMachine struct {
	Name      string
	Namespace string
	Class     string
	Role      string
	Image     string // empty: the only image, or an error listing them
	Tags      []string
	// Network: DHCP unless IP is set.
	IP, CIDR, Gateway string
	DNS               []string
	AdminUser         string
	SSHKeys           []string
	FlakeRef          string // empty: the site default flakeRepo#name
}

// Scaffold writes crossplane/claims/NAME.yaml and nix/hosts/NAME/configuration.nix.
// It checks the claim with the same rules as validate first, and never
// overwrites a file. It returns the paths written.
func Scaffold(root string, n NewMachine) ([]string, error) {
	in, err := repo.LoadInput(filepath.Join(root, repo.CompositionPath))
	if err != nil {
		return nil, err
	}
	if n.Image == "" {
		names := strings.Split(in.ImageNames(), ", ")
		if len(names) != 1 {
			return nil, fmt.Errorf("--image is required: the function input has several images: %s", in.ImageNames())
		}
		n.Image = names[0]
	}
	spec := &machine.Spec{
		Class: n.Class, Hostname: n.Name, Image: n.Image, Role: n.Role, Tags: n.Tags,
		Network:   machine.Network{DHCP: n.IP == "", IP: n.IP, CIDR: n.CIDR, Gateway: n.Gateway, DNS: n.DNS},
		Nix:       machine.Nix{FlakeRef: n.FlakeRef},
		Bootstrap: machine.Bootstrap{AdminUser: n.AdminUser, SSHAuthorizedKeys: n.SSHKeys},
	}
	if errs := machine.Validate(spec, in); len(errs) > 0 {
		return nil, fmt.Errorf("the new claim would be invalid:\n%w", errs)
	}

	claimPath := filepath.Join(root, repo.ClaimsDir, n.Name+".yaml")
	hostDir := filepath.Join(root, repo.HostsDir, n.Name)
	hostPath := filepath.Join(hostDir, "configuration.nix")
	for _, p := range []string{claimPath, hostPath} {
		if exists(p) {
			return nil, fmt.Errorf("%s already exists; pick another name or edit it", p)
		}
	}

	claim, err := claimYAML(n, spec)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", hostDir, err)
	}
	if err := os.WriteFile(claimPath, claim, 0o644); err != nil {
		return nil, fmt.Errorf("cannot write the claim: %w", err)
	}
	if err := os.WriteFile(hostPath, hostNix(n), 0o644); err != nil {
		return nil, fmt.Errorf("cannot write the host configuration: %w", err)
	}
	return []string{claimPath, hostPath}, nil
}

func claimYAML(n NewMachine, spec *machine.Spec) ([]byte, error) {
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the claim: %w", err)
	}
	sm := map[string]any{}
	if err := json.Unmarshal(js, &sm); err != nil {
		return nil, fmt.Errorf("cannot encode the claim: %w", err)
	}
	for k, v := range sm {
		if m, ok := v.(map[string]any); ok && len(m) == 0 {
			delete(sm, k) // proxmox: {} and nix: {} say nothing
		}
	}
	obj := map[string]any{
		"apiVersion": machine.APIVersion,
		"kind":       machine.ClaimKind,
		"metadata":   map[string]any{"name": n.Name, "namespace": n.Namespace},
		"spec":       sm,
	}
	b, err := yaml.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the claim: %w", err)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# %s: scaffolded by `labctl new machine`; its Nix config is %s/%s/configuration.nix.\n", n.Name, repo.HostsDir, n.Name)
	buf.Write(b)
	return buf.Bytes(), nil
}

// hostNix is a tiny host configuration: the logic lives in nix/modules.
func hostNix(n NewMachine) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s (claim: %s/%s.yaml). Keep it tiny: shared logic belongs in nix/modules.\n", n.Name, repo.ClaimsDir, n.Name)
	if n.IP != "" {
		b.WriteString("# Its static address lives only in the claim; cloud-init hands it to NixOS (D8).\n")
	}
	b.WriteString("{ ... }:\n{\n")
	if n.Role != "" {
		fmt.Fprintf(&b, "  homelab.role = %q;\n\n", n.Role)
	}
	b.WriteString("  system.stateVersion = \"26.05\";\n}\n")
	return b.Bytes()
}
