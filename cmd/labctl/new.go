package main

import (
	"fmt"
	"path/filepath"

	"github.com/homelab-infra/homelab-infra/internal/labctl"
	"github.com/homelab-infra/homelab-infra/internal/repo"
)

type newCmd struct {
	Machine newMachineCmd `cmd:"" help:"Scaffold a Machine claim in crossplane/claims/NAME.yaml and a tiny nix/hosts/NAME/configuration.nix. The claim is checked as labctl validate checks it before anything is written."`
}

type newMachineCmd struct {
	Name       string   `arg:"" help:"Host name of the new machine (an RFC 1123 label)."`
	Class      string   `required:"" predictor:"classes" help:"Sizing class, one of the Composition's classes (small, medium, large)."`
	Role       string   `required:"" help:"Role, e.g. dns or docker; becomes a Proxmox tag and homelab.role."`
	Image      string   `help:"Template image; may be left out when the Composition has only one."`
	Namespace  string   `default:"infra-machines" help:"Namespace of the claim."`
	Tags       []string `help:"Extra Proxmox tags."`
	IP         string   `help:"Static IPv4 address; leave out for DHCP."`
	CIDR       string   `name:"cidr" help:"Subnet of the static address, e.g. 10.0.10.0/24."`
	Gateway    string   `help:"Gateway of the static address."`
	DNS        []string `name:"dns" help:"DNS servers."`
	AdminUser  string   `default:"ops" help:"Admin user cloud-init creates."`
	SSHKey     []string `name:"ssh-key" help:"Public key line for the admin user (repeatable)."`
	SSHKeyFile []string `name:"ssh-key-file" type:"existingfile" help:"File of public key lines (e.g. ~/.ssh/id_ed25519.pub) (repeatable)."`
	FlakeRef   string   `help:"Flake ref; default: the Composition's flakeRepo#NAME."`
	VMID       int64    `name:"vm-id" help:"Proxmox VM id; default: one above the highest id of the repo's claims (at least 100). It must be free in your cluster."`
	DryRun     bool     `help:"Write nothing: print the claim (-o yaml or json) instead."`
	Output     string   `short:"o" enum:"text,yaml,json" default:"text" help:"With --dry-run: yaml (default) or json."`
}

func (c *newMachineCmd) Run(g *globals) error {
	keys := append([]string{}, c.SSHKey...)
	for _, f := range c.SSHKeyFile {
		ks, err := readKeys(f)
		if err != nil {
			return err
		}
		keys = append(keys, ks...)
	}
	if len(keys) == 0 {
		return usageErrorf("give the admin user's public key with --ssh-key or --ssh-key-file")
	}
	if c.Output != "text" && !c.DryRun {
		return usageErrorf("-o %s prints the claim instead of writing it: add --dry-run", c.Output)
	}
	root, err := g.Root()
	if err != nil {
		return err
	}
	n := labctl.NewMachine{
		Name: c.Name, Namespace: c.Namespace, Class: c.Class, Role: c.Role, Image: c.Image, Tags: c.Tags,
		IP: c.IP, CIDR: c.CIDR, Gateway: c.Gateway, DNS: c.DNS,
		AdminUser: c.AdminUser, SSHKeys: keys, FlakeRef: c.FlakeRef, VMID: c.VMID,
	}
	if c.DryRun {
		claim, err := labctl.ScaffoldClaim(root, n)
		if err != nil {
			return err
		}
		if c.Output == "json" {
			return printData(g.Stdout, "json", claim)
		}
		_, err = g.Stdout.Write(claim.YAML)
		return err
	}
	paths, err := labctl.Scaffold(root, n)
	if err != nil {
		return err
	}
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintln(g.Stdout, "wrote", rel)
	}
	fmt.Fprintf(g.Stdout, "next: fill in %s/%s/configuration.nix, run labctl validate, commit both files\n", repo.HostsDir, c.Name)
	return nil
}
