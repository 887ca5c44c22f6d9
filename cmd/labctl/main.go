// Command labctl is the operator CLI: it validates the repository, renders
// claims into the exact resources Crossplane would create, and scaffolds new
// machines. The logic lives in internal/labctl.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/alecthomas/kong"

	"github.com/homelab-infra/homelab-infra/internal/labctl"
	"github.com/homelab-infra/homelab-infra/internal/repo"
)

type cli struct {
	Root string `short:"C" default:"." type:"existingdir" help:"Root of the homelab-infra repository."`

	Validate validateCmd `cmd:"" help:"Check the whole repo: claims against the XRD and the function's rules, flake refs against nix/hosts, hosts against claims, duplicates; the Flux, Argo CD and package manifests in deploy/ and crossplane/ (against CRD schemas with --schemas). Exits non-zero on any problem."`
	Render   renderCmd   `cmd:"" help:"Print the resources Crossplane would compose for claims (all in crossplane/claims by default), with their decoded user-data."`
	New      newCmd      `cmd:"" help:"Scaffold new things."`
	Secrets  secretsCmd  `cmd:"" help:"A machine's Vault identity."`
}

type validateCmd struct {
	Nixpkgs string   `type:"existingdir" env:"LABCTL_NIXPKGS" help:"A nixpkgs folder (with lib/) to check the hosts' declared secrets against their claims; default: the nixpkgs flake.lock pins, when it is in the Nix store."`
	Schemas []string `type:"existingdir" placeholder:"DIR" help:"Folders of CRDs to check deploy/ and crossplane/ against (repeatable): the one hack/schemas.sh prints (Flux, Argo CD, Crossplane) and the provider's CRDs. make validate passes both."`
}

func (c *validateCmd) Run(g *cli) error {
	r := labctl.ValidateWith(context.Background(), g.Root, labctl.ValidateOptions{Nixpkgs: c.Nixpkgs, Schemas: c.Schemas})
	r.PrintNotes(os.Stderr)
	if r.OK() {
		r.Print(os.Stdout)
		return nil
	}
	r.Print(os.Stderr)
	return errExit
}

type renderCmd struct {
	Claims   []string `arg:"" optional:"" help:"Claim files, or names of claims in crossplane/claims. Default: every claim there."`
	UserData bool     `help:"Print only the user-data of each claim, exactly as the VM receives it."`
}

func (c *renderCmd) Run(g *cli) error {
	rs, err := labctl.Render(context.Background(), g.Root, c.Claims)
	if err != nil {
		return err
	}
	return labctl.Print(os.Stdout, rs, labctl.RenderOptions{UserDataOnly: c.UserData})
}

type newCmd struct {
	Machine newMachineCmd `cmd:"" help:"Scaffold a Machine claim in crossplane/claims/NAME.yaml and a tiny nix/hosts/NAME/configuration.nix."`
}

type newMachineCmd struct {
	Name       string   `arg:"" help:"Host name of the new machine (an RFC 1123 label)."`
	Class      string   `required:"" help:"Sizing class, one of the Composition's classes (small, medium, large)."`
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
}

func (c *newMachineCmd) Run(g *cli) error {
	keys := append([]string{}, c.SSHKey...)
	for _, f := range c.SSHKeyFile {
		ks, err := readKeys(f)
		if err != nil {
			return err
		}
		keys = append(keys, ks...)
	}
	if len(keys) == 0 {
		return errors.New("give the admin user's public key with --ssh-key or --ssh-key-file")
	}
	paths, err := labctl.Scaffold(g.Root, labctl.NewMachine{
		Name: c.Name, Namespace: c.Namespace, Class: c.Class, Role: c.Role, Image: c.Image, Tags: c.Tags,
		IP: c.IP, CIDR: c.CIDR, Gateway: c.Gateway, DNS: c.DNS,
		AdminUser: c.AdminUser, SSHKeys: keys, FlakeRef: c.FlakeRef, VMID: c.VMID,
	})
	if err != nil {
		return err
	}
	for _, p := range paths {
		rel, _ := filepath.Rel(g.Root, p)
		fmt.Println("wrote", rel)
	}
	fmt.Printf("next: fill in %s/%s/configuration.nix, run labctl validate, commit both files\n", repo.HostsDir, c.Name)
	return nil
}

// errExit makes main exit 1 after a command has printed its own report.
var errExit = errors.New("")

func main() {
	g := &cli{}
	ctx := kong.Parse(g, kong.Name("labctl"),
		kong.Description("Operator CLI for homelab-infra: Machine claims in Git become NixOS VMs on Proxmox."),
		kong.UsageOnError())
	if err := ctx.Run(g); err != nil {
		if !errors.Is(err, errExit) {
			fmt.Fprintln(os.Stderr, "labctl:", err)
		}
		os.Exit(1)
	}
}
