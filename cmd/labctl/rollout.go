package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/rollout"
)

type rolloutCmd struct {
	Plan rolloutPlanCmd `cmd:"" help:"Print a rollout's waves and gates, read from Git alone (the claims and workflows/rollout-policy.yaml at the target, the machines' deploy refs): what run does."`
	Run  rolloutRunCmd  `cmd:"" help:"Carry out a rollout: move each machine's deploy/<host> to the target in waves, reading verdicts from Prometheus; stop at the first failure, a stale machine, a firing canary alert or a gate not approved. Exit 0 completed, 1 halted, 3 stopped at a gate."`
	Host rolloutHostCmd `cmd:"" help:"Move one machine's deploy/<host> to the target and wait for its verdict (a workflow step). Exit 0 converged or pending its reboot, 1 otherwise."`
}

// rolloutFlags select a rollout; plan, run and host share them.
type rolloutFlags struct {
	Remote string   `default:"origin" help:"The Git remote (name or URL) whose deploy/* and reboot/* refs move; the repository is -C."`
	Branch string   `default:"main" help:"The branch of reviewed commits: targets must be on it."`
	Target string   `default:"main" help:"The commit to roll out (an id, or the branch's head)."`
	Role   []string `help:"Machines with this role (repeatable: any of them)."`
	Tag    []string `help:"Machines with this tag (repeatable: any of them)."`
	Hosts  []string `name:"host" help:"Machines by host name (repeatable)."`
	Group  string   `help:"The rollout's group, one rollout at a time per group; default: from the selector."`
	Output string   `short:"o" enum:"text,json,yaml" default:"text" help:"Output format: text (a table), json or yaml."`
}

func (f *rolloutFlags) plan(ctx context.Context, g *globals) (*rollout.Git, rollout.Plan, error) {
	root, err := g.Root()
	if err != nil {
		return nil, rollout.Plan{}, err
	}
	git := &rollout.Git{Dir: root, Remote: f.Remote, Branch: f.Branch}
	in, err := rollout.Load(ctx, git, f.Target, rollout.Selector{Roles: f.Role, Tags: f.Tag, Hosts: f.Hosts}, f.Group)
	if err != nil {
		return nil, rollout.Plan{}, err
	}
	p, err := rollout.MakePlan(in)
	return git, p, err
}

// print writes v as data (-o json|yaml), or for people with text.
func (f *rolloutFlags) print(g *globals, v any, text func(io.Writer) error) error {
	if f.Output != "text" {
		return printData(g.Stdout, f.Output, v)
	}
	return text(g.Stdout)
}

type rolloutPlanCmd struct {
	rolloutFlags
}

func (c *rolloutPlanCmd) Run(g *globals) error {
	_, p, err := c.plan(context.Background(), g)
	if err != nil {
		return err
	}
	return c.print(g, p, func(w io.Writer) error { return rollout.PrintPlan(w, p) })
}

// driverFlags say where verdicts come from.
type driverFlags struct {
	Prometheus string        `required:"" env:"PROMETHEUS_URL" help:"Prometheus' URL (http://host:9090), which scrapes the machines' nix-gitops metrics."`
	Poll       time.Duration `default:"10s" help:"How often a waiting machine's verdict is read."`
}

func (f *driverFlags) driver(g *globals, git *rollout.Git, approved []string) (*rollout.Driver, error) {
	prom, err := rollout.NewPrometheus(f.Prometheus)
	if err != nil {
		return nil, err
	}
	d := &rollout.Driver{Git: git, Verdicts: prom, Poll: f.Poll, Approved: map[string]bool{},
		Log: slog.New(slog.NewTextHandler(g.Stderr, nil))}
	for _, a := range approved {
		d.Approved[a] = true
	}
	return d, nil
}

type rolloutRunCmd struct {
	rolloutFlags
	driverFlags
	Approve []string `enum:"dns,reboot" placeholder:"GATE" help:"Approve a gate for this run: dns, reboot (repeatable). Without it the run stops at the gate; run it again with the approval to go on."`
}

// errGated ends a rollout stopped at a gate: exit 3, the report printed.
var errGated = errors.New("stopped at a gate")

func (c *rolloutRunCmd) Run(g *globals) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	git, p, err := c.plan(ctx, g)
	if err != nil {
		return err
	}
	d, err := c.driver(g, git, c.Approve)
	if err != nil {
		return err
	}
	r := d.Run(ctx, p)
	if err := c.print(g, r, func(w io.Writer) error { return rollout.PrintReport(w, r) }); err != nil {
		return err
	}
	switch r.Outcome {
	case rollout.Halted:
		return errReported
	case rollout.Gated:
		return errGated
	}
	return nil
}

type rolloutHostCmd struct {
	rolloutFlags
	driverFlags
	Name string `arg:"" help:"The machine's host name (its deploy/<host> ref)."`
}

func (c *rolloutHostCmd) Run(g *globals) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c.Hosts = []string{c.Name}
	git, p, err := c.plan(ctx, g)
	if err != nil {
		return err
	}
	d, err := c.driver(g, git, nil)
	if err != nil {
		return err
	}
	v, f := d.Host(ctx, p, c.Name)
	err = c.print(g, v, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%s\t%s %s\n", c.Name, v.State, v.Commit)
		return err
	})
	if err != nil {
		return err
	}
	if f != nil {
		return fmt.Errorf("%s: %s", f.Host, f.Reason)
	}
	return nil
}
