package main

import (
	"context"

	"github.com/homelab-infra/homelab-infra/internal/labctl"
)

type validateCmd struct {
	Claims         []string `arg:"" optional:"" predictor:"claims" help:"Validate only these claim files (- reads one from stdin) as if they were in crossplane/claims, against the rest of the repo. Default: the whole repo."`
	Against        string   `placeholder:"REV" help:"A Git revision to check edits against: each claim is compared with its version there and the XRD's transition rules run on the pair, as the API server runs them on an update. Default: the branch's upstream (e.g. origin/main); none turns it off."`
	Nixpkgs        string   `type:"existingdir" env:"LABCTL_NIXPKGS" help:"A nixpkgs folder (with lib/) to check the hosts' declared secrets against their claims; default: the nixpkgs flake.lock pins, when it is in the Nix store."`
	Schemas        []string `type:"existingdir" placeholder:"DIR" help:"Folders of CRDs to check deploy/ and crossplane/ against (repeatable): the one hack/schemas.sh prints (Flux, Argo CD, Crossplane) and the provider's CRDs. make validate passes both."`
	UncheckedGroup []string `placeholder:"GROUP" help:"An API group whose kinds are checked without a schema, noted (repeatable): make demo passes the provider's when its CRDs are not at hand."`
	Output         string   `short:"o" enum:"text,json,yaml" default:"text" help:"Output format: text (problems on stderr, one a line), json or yaml (the report on stdout)."`
}

func (c *validateCmd) Run(g *globals) error {
	root, err := g.Root()
	if err != nil {
		return err
	}
	r := labctl.ValidateWith(context.Background(), root, labctl.ValidateOptions{
		Nixpkgs: c.Nixpkgs, Schemas: c.Schemas, Claims: c.Claims, Stdin: g.Stdin, Against: c.Against, UncheckedGroups: c.UncheckedGroup,
	})
	if c.Output != "text" {
		if err := printData(g.Stdout, c.Output, r); err != nil {
			return err
		}
	} else {
		r.PrintNotes(g.Stderr)
		if r.OK() {
			r.Print(g.Stdout)
		} else {
			r.Print(g.Stderr)
		}
	}
	if !r.OK() {
		return errReported
	}
	return nil
}
