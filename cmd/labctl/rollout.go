package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/agent/gitsource"
	"github.com/homelab-infra/homelab-infra/internal/rollout"
)

type rolloutCmd struct {
	Plan rolloutPlanCmd `cmd:"" help:"Print a rollout's waves and gates, read from Git alone (the claims and workflows/rollout-policy.yaml at the target, the machines' deploy refs): what run does."`
	Run  rolloutRunCmd  `cmd:"" help:"Carry out a rollout: move each machine's deploy/<host> to the target in waves, reading verdicts from Prometheus; stop at the first failure, a stale machine, a firing canary alert or a gate not approved. Exit 0 completed, 1 halted, 3 stopped at a gate."`
	Host rolloutHostCmd `cmd:"" help:"Move one machine's deploy/<host> to the target and wait for its verdict (a workflow step). Exit 0 converged or pending its reboot, 1 otherwise."`

	// The steps of the Argo WorkflowTemplate (workflows/rollout.yaml).
	Check   rolloutCheckCmd   `cmd:"" help:"Check that the selected machines (--host) have fresh verdicts before a wave moves (a workflow step). Exit 1 naming a machine with none."`
	Soak    rolloutSoakCmd    `cmd:"" help:"Let the canary (--host) run for the policy's soak, then fail on any alert firing for it (a workflow step)."`
	Gate    rolloutGateCmd    `cmd:"" help:"Record a person's decision at a gate (a workflow step): exit 0 approved, 1 rejected."`
	Reboots rolloutRebootsCmd `cmd:"" help:"List the machines that wait for a reboot into the target, as JSON (a workflow step)."`
	Reboot  rolloutRebootCmd  `cmd:"" help:"Approve one machine's reboot into the target (reboot/<host>) and wait for it to come back converged (a workflow step)."`
	Report  rolloutReportCmd  `cmd:"" help:"Report where the rollout's machines are: advanced, pending, waiting for a reboot (the workflow's exit handler)."`
	Status  rolloutStatusCmd  `cmd:"" help:"Each selected machine's desired commit (its deploy ref) against the one it runs, its verdict, a pending reboot, its last failure: which machines lag, and why."`

	PublishState rolloutPublishCmd `cmd:"" name:"publish-state" help:"Publish every machine's running state, read from Prometheus, as a ConfigMap per machine in the claims' namespace, which the composition function shows on each Machine claim (a service, workflows/running-state.yaml)."`
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
	// The Git token may push deploy/* and reboot/* only (the forge
	// enforces it); git reads it through labctl as GIT_ASKPASS.
	GitTokenFile string `type:"path" env:"ROLLOUT_GIT_TOKEN_FILE" placeholder:"PATH" help:"A file holding the Git token for the remote (HTTP(S)); git gets it through labctl as GIT_ASKPASS, never in an argument or URL. Default: git's own credentials."`
	GitUser      string `env:"ROLLOUT_GIT_USER" default:"rollout" help:"The user name sent with --git-token-file's token."`
}

func (f *rolloutFlags) plan(ctx context.Context, g *globals) (*rollout.Git, rollout.Plan, error) {
	root, err := g.Root()
	if err != nil {
		return nil, rollout.Plan{}, err
	}
	git := &rollout.Git{Dir: root, Remote: f.Remote, Branch: f.Branch}
	if f.GitTokenFile != "" {
		self, err := os.Executable()
		if err != nil {
			return nil, rollout.Plan{}, fmt.Errorf("cannot find labctl's own executable for GIT_ASKPASS: %w", err)
		}
		git.Env = gitsource.AskPassEnv(self, f.GitTokenFile, f.GitUser)
	}
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
	WavesFile  string `type:"path" placeholder:"PATH" help:"Also write the waves as a JSON list, for a workflow's withParam."`
	TargetFile string `type:"path" placeholder:"PATH" help:"Also write the target's commit id, so every later step runs what was planned."`
}

func (c *rolloutPlanCmd) Run(g *globals) error {
	_, p, err := c.plan(context.Background(), g)
	if err != nil {
		return err
	}
	if c.WavesFile != "" {
		if err := writeJSON(c.WavesFile, rollout.WorkflowWaves(p)); err != nil {
			return err
		}
	}
	if c.TargetFile != "" {
		if err := os.WriteFile(c.TargetFile, []byte(p.Target), 0o644); err != nil {
			return fmt.Errorf("cannot write the target: %w", err)
		}
	}
	return c.print(g, p, func(w io.Writer) error { return rollout.PrintPlan(w, p) })
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
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
	stepCmd
	Name string `arg:"" name:"host" help:"The machine's host name (its deploy/<host> ref)."`
}

func (c *rolloutHostCmd) Run(g *globals) error {
	c.Hosts = []string{c.Name}
	ctx, stop, d, p, err := c.setup(g)
	defer stop()
	if err != nil {
		return err
	}
	v, f := d.Host(ctx, p, c.Name)
	if err := c.printVerdict(g, v); err != nil {
		return err
	}
	return failed(f)
}

// stepCmd is what every workflow step shares: the rollout, and Prometheus.
type stepCmd struct {
	rolloutFlags
	driverFlags
}

// setup plans the rollout (pinned to --target) and makes its driver.
func (c *stepCmd) setup(g *globals) (context.Context, func(), *rollout.Driver, rollout.Plan, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	git, p, err := c.plan(ctx, g)
	if err != nil {
		return ctx, stop, nil, p, err
	}
	d, err := c.driver(g, git, nil)
	return ctx, stop, d, p, err
}

func (c *stepCmd) printVerdict(g *globals, v rollout.Verdict) error {
	return c.print(g, v, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%s\t%s %s\n", v.Host, v.State, v.Commit)
		return err
	})
}

func failed(f *rollout.Failure) error {
	if f == nil {
		return nil
	}
	if f.Host == "" {
		return errors.New(f.Reason)
	}
	return fmt.Errorf("%s: %s", f.Host, f.Reason)
}

type rolloutCheckCmd struct {
	stepCmd
}

func (c *rolloutCheckCmd) Run(g *globals) error {
	ctx, stop, d, p, err := c.setup(g)
	defer stop()
	if err != nil {
		return err
	}
	return failed(d.Preflight(ctx, p, p.Hosts()))
}

type rolloutSoakCmd struct {
	stepCmd
}

func (c *rolloutSoakCmd) Run(g *globals) error {
	ctx, stop, d, p, err := c.setup(g)
	defer stop()
	if err != nil {
		return err
	}
	return failed(d.Soak(ctx, p, p.Hosts()))
}

type rolloutRebootsCmd struct {
	stepCmd
	File string `type:"path" placeholder:"PATH" help:"Also write the list to this file, for a workflow's withParam."`
}

func (c *rolloutRebootsCmd) Run(g *globals) error {
	ctx, stop, d, p, err := c.setup(g)
	defer stop()
	if err != nil {
		return err
	}
	hosts, err := d.PendingReboots(ctx, p)
	if err != nil {
		return err
	}
	if hosts == nil {
		hosts = []string{}
	}
	if c.File != "" {
		if err := writeJSON(c.File, hosts); err != nil {
			return err
		}
	}
	return printData(g.Stdout, "json", hosts)
}

type rolloutRebootCmd struct {
	stepCmd
	Name string `arg:"" name:"host" help:"The machine to reboot."`
}

func (c *rolloutRebootCmd) Run(g *globals) error {
	c.Hosts = []string{c.Name}
	ctx, stop, d, p, err := c.setup(g)
	defer stop()
	if err != nil {
		return err
	}
	v, f := d.Reboot(ctx, p, c.Name)
	if err := c.print(g, v, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%s\t%s %s\n", c.Name, v.State, v.Commit)
		return err
	}); err != nil {
		return err
	}
	return failed(f)
}

type rolloutReportCmd struct {
	stepCmd
	Status string `help:"The workflow's status ({{workflow.status}}), printed with the report."`
	File   string `type:"path" placeholder:"PATH" help:"Also write the report as JSON to this file, for a workflow's output parameter."`
}

func (c *rolloutReportCmd) Run(g *globals) error {
	ctx, stop, d, p, err := c.setup(g)
	defer stop()
	if err != nil {
		return err
	}
	r, err := d.Status(ctx, p)
	if err != nil {
		return err
	}
	r.Outcome = c.Status
	if c.File != "" {
		if err := writeJSON(c.File, r); err != nil {
			return err
		}
	}
	return c.print(g, r, func(w io.Writer) error { return rollout.PrintReport(w, r) })
}

type rolloutGateCmd struct {
	Name     string `arg:"" name:"gate" enum:"dns,reboot" help:"The gate: dns or reboot."`
	Decision string `required:"" enum:"approve,reject" help:"approve or reject."`
	Approver string `required:"" help:"Who decided (Argo records no approver)."`
}

func (c *rolloutGateCmd) Run(g *globals) error {
	if c.Decision != "approve" {
		return fmt.Errorf("gate %s rejected by %s: the rollout stops here; machines not advanced keep their refs", c.Name, c.Approver)
	}
	_, err := fmt.Fprintf(g.Stdout, "gate %s approved by %s\n", c.Name, c.Approver)
	return err
}

type rolloutStatusCmd struct {
	stepCmd
}

func (c *rolloutStatusCmd) Run(g *globals) error {
	ctx, stop, d, p, err := c.setup(g)
	defer stop()
	if err != nil {
		return err
	}
	ss, err := d.States(ctx, p, p.Selected())
	if err != nil {
		return err
	}
	return c.print(g, ss, func(w io.Writer) error { return rollout.PrintStates(w, ss) })
}

type rolloutPublishCmd struct {
	Prometheus string        `required:"" env:"PROMETHEUS_URL" help:"Prometheus' URL (http://host:9090), which scrapes the machines' nix-gitops metrics."`
	Namespace  string        `default:"infra-machines" help:"The claims' namespace: the ConfigMaps go there."`
	Every      time.Duration `default:"1m" help:"How often to publish."`
	StaleAfter time.Duration `default:"15m" help:"A verdict older than this is stale; keep it equal to workflows/rollout-policy.yaml's staleAfter."`
	Once       bool          `help:"Publish once and exit."`
	Kubeconfig string        `type:"path" env:"KUBECONFIG" help:"Kubeconfig of the cluster the claims live in (default: the usual places, then the pod's service account)."`
}

func (c *rolloutPublishCmd) Run(g *globals) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	kube, err := kubeClient(c.Kubeconfig)
	if err != nil {
		return err
	}
	prom, err := rollout.NewPrometheus(c.Prometheus)
	if err != nil {
		return err
	}
	p := &rollout.Publisher{Verdicts: prom, ConfigMaps: kube.CoreV1(), Namespace: c.Namespace, StaleAfter: c.StaleAfter,
		Log: slog.New(slog.NewTextHandler(g.Stderr, nil))}
	if c.Once {
		return p.Publish(ctx)
	}
	return p.Run(ctx, c.Every)
}
