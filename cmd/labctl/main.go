// Command labctl is the operator CLI: it validates the repository, renders
// claims into the exact resources Crossplane would create, and scaffolds new
// machines. The logic lives in internal/labctl; this package parses flags.
//
// Exit status, as kubectl and flux use it: 0 when the command did what was
// asked, 1 when it found problems or failed, 2 when the command line itself
// is wrong (unknown verb or flag, a missing argument); and 3 when a rollout
// stopped at a gate nobody approved.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kong"
	"github.com/willabides/kongplete"

	"github.com/homelab-infra/homelab-infra/internal/agent/gitsource"
	"github.com/homelab-infra/homelab-infra/internal/repo"
)

// Exit statuses.
const (
	exitOK       = 0
	exitProblems = 1
	exitUsage    = 2
	exitGated    = 3 // labctl rollout run stopped at a gate nobody approved
)

type cli struct {
	Root string `short:"C" placeholder:"DIR" type:"path" help:"The homelab-infra repository (default: the one that holds the current folder)."`

	Validate   validateCmd   `cmd:"" help:"Check the whole repo (or only the given claim files, - for stdin): claims as Flux reads them, against the XRD's schema and rules (their edits too, against --against) and the function's rules; flake refs against nix/hosts; hosts against claims; duplicates; namespaces; the Flux, Argo CD and package manifests in deploy/ and crossplane/. Exits 1 on any problem."`
	Render     renderCmd     `cmd:"" help:"Print the resources Crossplane would compose for claims (all in crossplane/claims by default; files, claim names or - for stdin), with their decoded user-data."`
	New        newCmd        `cmd:"" help:"Scaffold new things."`
	Secrets    secretsCmd    `cmd:"" help:"A machine's Vault identity."`
	Rollout    rolloutCmd    `cmd:"" help:"Roll a commit on main out to machines in waves, behind approval gates, by moving their deploy/<host> refs (design D13)."`
	Version    versionCmd    `cmd:"" help:"Print labctl's version and the commit it was built from."`
	Completion completionCmd `cmd:"" help:"Print a shell completion script: source <(labctl completion bash), or zsh, or fish."`
}

// globals are what every command may use: the streams and the repository.
type globals struct {
	root           string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Root is the repository labctl works on: -C, or the repository that holds
// the current folder.
func (g *globals) Root() (string, error) {
	if g.root != "" {
		if _, err := os.Stat(g.root); err != nil {
			return "", fmt.Errorf("-C %s: %w", g.root, err)
		}
		return g.root, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("cannot find the current folder: %w", err)
	}
	return repo.FindRoot(wd)
}

// usageError is a command line that is wrong in a way only the command can
// tell (two flags that exclude each other, say): exit 2, as a parse error.
type usageError struct{ error }

func usageErrorf(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// errReported ends a command whose report is already printed: exit 1 with
// nothing more said.
var errReported = errors.New("problems reported")

func newParser(c *cli, stdout, stderr io.Writer, exit func(int)) (*kong.Kong, error) {
	return kong.New(c, kong.Name("labctl"),
		kong.Description("Operator CLI for homelab-infra: Machine claims in Git become NixOS VMs on Proxmox."),
		kong.Writers(stdout, stderr), kong.Exit(exit),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}))
}

func main() {
	if gitsource.IsAskPass() {
		// Started by git as GIT_ASKPASS (labctl rollout --git-token-file):
		// answer with the token file.
		if err := gitsource.AskPass(os.Args[1], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "labctl askpass:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{}
	parser, err := newParser(c, stdout, stderr, os.Exit)
	if err != nil {
		fmt.Fprintln(stderr, "labctl:", err)
		return exitProblems
	}
	// A shell asking for completions (COMP_LINE set) is answered here.
	kongplete.Complete(parser, kongplete.WithPredictors(predictors()))

	ctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "labctl: %v\n", err)
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", helpPath(err))
		return exitUsage
	}
	g := &globals{root: c.Root, Stdin: stdin, Stdout: stdout, Stderr: stderr}
	err = ctx.Run(g)
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "labctl: %v\n", err)
		fmt.Fprintf(stderr, "Run 'labctl %s --help' for usage.\n", ctx.Selected().Path())
		return exitUsage
	case errors.Is(err, errReported):
		return exitProblems
	case errors.Is(err, errGated):
		return exitGated
	default:
		fmt.Fprintln(stderr, "labctl:", err)
		return exitProblems
	}
}

// helpPath is the command whose --help answers a parse error.
func helpPath(err error) string {
	var pe *kong.ParseError
	if errors.As(err, &pe) && pe.Context != nil {
		if n := pe.Context.Selected(); n != nil {
			return "labctl " + n.Path()
		}
	}
	return "labctl"
}
