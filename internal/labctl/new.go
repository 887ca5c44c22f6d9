package labctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/homelab-infra/homelab-infra/internal/fluxbuild"
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
	// VMID is the Proxmox VM id; 0 picks one above the highest id of the
	// repo's claims and the templates' (at least machine.MinVMID).
	VMID int64
}

// Scaffold writes crossplane/claims/NAME.yaml and nix/hosts/NAME/configuration.nix.
// It checks the claim first, as labctl validate checks it (the XRD's schema
// and rules, the model's rules, the repo's other claims and hosts), and
// writes nothing when that finds a problem; it never overwrites a file. It
// returns the paths written.
func Scaffold(root string, n NewMachine) ([]string, error) {
	c, err := ScaffoldClaim(root, n)
	if err != nil {
		return nil, err
	}
	claimPath := filepath.Join(root, repo.ClaimsDir, n.Name+".yaml")
	hostDir := filepath.Join(root, repo.HostsDir, n.Name)
	hostPath := filepath.Join(hostDir, "configuration.nix")
	for _, p := range []string{claimPath, hostPath} {
		if exists(p) {
			return nil, fmt.Errorf("%s already exists; pick another name or edit it", p)
		}
	}
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", hostDir, err)
	}
	if err := os.WriteFile(claimPath, c.YAML, 0o644); err != nil {
		return nil, fmt.Errorf("cannot write the claim: %w", err)
	}
	if err := os.WriteFile(hostPath, hostNix(n), 0o644); err != nil {
		return nil, fmt.Errorf("cannot write the host configuration: %w", err)
	}
	return []string{claimPath, hostPath}, nil
}

// NewClaim is a scaffolded claim: its file's content and its object.
type NewClaim struct {
	YAML   []byte
	Object map[string]any
}

// ScaffoldClaim makes the claim Scaffold would write, checked as labctl
// validate checks it, without writing anything.
func ScaffoldClaim(root string, n NewMachine) (*NewClaim, error) {
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
	if n.VMID == 0 {
		if n.VMID, err = nextVMID(root, in); err != nil {
			return nil, err
		}
	}
	spec := &machine.Spec{
		Class: n.Class, Hostname: n.Name, Image: n.Image, Role: n.Role, Tags: n.Tags,
		Network:   machine.Network{DHCP: n.IP == "", IP: n.IP, CIDR: n.CIDR, Gateway: n.Gateway, DNS: n.DNS},
		Proxmox:   machine.Proxmox{VMID: &n.VMID},
		Nix:       machine.Nix{FlakeRef: n.FlakeRef},
		Bootstrap: machine.Bootstrap{AdminUser: n.AdminUser, SSHAuthorizedKeys: n.SSHKeys},
	}
	b, err := claimYAML(n, spec)
	if err != nil {
		return nil, err
	}
	// The same checks as `labctl validate crossplane/claims/NAME.yaml`,
	// with the host this command adds.
	path := filepath.Join(root, repo.ClaimsDir, n.Name+".yaml")
	objs, err := fluxbuild.Bytes(path, b)
	if err != nil {
		return nil, err
	}
	docs := docsOf(objs)
	r := checkDocs(context.Background(), root, docs, n.Name)
	if !r.OK() {
		var msg strings.Builder
		for _, p := range r.Problems {
			msg.WriteString("\n" + p.String())
		}
		return nil, fmt.Errorf("the new claim would be invalid, nothing written:%s", msg.String())
	}
	return &NewClaim{YAML: b, Object: docs[0].Object}, nil
}

// nextVMID is one above the highest VM id the repo's claims use (at least
// machine.MinVMID), skipping template ids. Only the cluster knows every id in
// use; validate and the function refuse a clash with another claim or a
// template.
func nextVMID(root string, in *machine.Input) (int64, error) {
	claims, err := repo.Claims(filepath.Join(root, repo.ClaimsDir))
	if err != nil {
		return 0, err
	}
	next := int64(machine.MinVMID)
	for _, c := range claims {
		if id := c.Spec.Proxmox.VMID; id != nil && *id >= next {
			next = *id + 1
		}
	}
	for taken := true; taken; {
		taken = false
		for _, img := range in.Images {
			if img.TemplateVMID == next {
				next++
				taken = true
			}
		}
	}
	return next, nil
}

// claimYAML writes the claim with its fields in the model's order (the
// order of the contract), block style, long key lines unwrapped.
func claimYAML(n NewMachine, spec *machine.Spec) ([]byte, error) {
	obj := struct {
		APIVersion string        `json:"apiVersion"`
		Kind       string        `json:"kind"`
		Metadata   any           `json:"metadata"`
		Spec       *machine.Spec `json:"spec"`
	}{machine.APIVersion, machine.ClaimKind, struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	}{n.Name, n.Namespace}, spec}
	js, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the claim: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(js, &doc); err != nil {
		return nil, fmt.Errorf("cannot encode the claim: %w", err)
	}
	blockStyle(&doc)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# %s: scaffolded by `labctl new machine`; its Nix config is %s/%s/configuration.nix.\n", n.Name, repo.HostsDir, n.Name)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("cannot encode the claim: %w", err)
	}
	return buf.Bytes(), enc.Close()
}

// blockStyle turns JSON's flow style into YAML block style, and drops empty
// objects (proxmox: {} and nix: {} say nothing).
func blockStyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.MappingNode {
		var kept []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			v := n.Content[i+1]
			if v.Kind == yaml.MappingNode && len(v.Content) == 0 {
				continue
			}
			kept = append(kept, n.Content[i], v)
		}
		n.Content = kept
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
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
