package main

import (
	"context"

	"github.com/homelab-infra/homelab-infra/internal/labctl"
)

type renderCmd struct {
	Claims   []string `arg:"" optional:"" predictor:"claims" help:"Claim files (- reads from stdin), or names of claims in crossplane/claims. Default: every claim there."`
	UserData bool     `help:"Print only the user-data of each claim, exactly as the VM receives it."`
	Output   string   `short:"o" enum:"yaml,json" default:"yaml" help:"Output format: yaml (the resources, each claim's decoded user-data as comments) or json (a v1 List of the resources, as kubectl prints one)."`
}

func (c *renderCmd) Run(g *globals) error {
	if c.UserData && c.Output != "yaml" {
		return usageErrorf("--user-data prints the user-data as it is; leave out -o %s", c.Output)
	}
	root, err := g.Root()
	if err != nil {
		return err
	}
	rs, err := labctl.RenderFrom(context.Background(), root, c.Claims, g.Stdin)
	if err != nil {
		return err
	}
	if c.Output == "json" {
		return printData(g.Stdout, "json", labctl.List(rs))
	}
	return labctl.Print(g.Stdout, rs, labctl.RenderOptions{UserDataOnly: c.UserData})
}
