package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/posener/complete"

	"github.com/homelab-infra/homelab-infra/internal/repo"
)

// Completion works as kubectl's and flux's does: the script a shell sources
// makes the shell call labctl back with the command line (COMP_LINE), and
// kongplete answers from the verbs and flags main declares, plus the
// predictors below.
type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"The shell: bash, zsh or fish."`
}

func (c *completionCmd) Run(g *globals) error {
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find labctl's own path: %w", err)
	}
	var script string
	switch c.Shell {
	case "bash":
		script = "complete -o default -C %[1]q labctl\n"
	case "zsh":
		// zsh runs bash completion functions through bashcompinit.
		script = "autoload -U +X bashcompinit && bashcompinit\ncomplete -o default -C %[1]q labctl\n"
	case "fish":
		// fish has no COMP_LINE of its own: set it from the command line,
		// with a trailing space when the cursor starts a new word.
		script = "function __labctl_complete\n" +
			"    set -lx COMP_LINE (commandline -cp)\n" +
			"    if test -z (commandline -ct)\n" +
			"        set COMP_LINE \"$COMP_LINE \"\n" +
			"    end\n" +
			"    %[1]q\n" +
			"end\n" +
			"complete -f -c labctl -a '(__labctl_complete)'\n"
	}
	_, err = fmt.Fprintf(g.Stdout, script, bin)
	return err
}

// predictors complete values from the repository the shell is in.
func predictors() map[string]complete.Predictor {
	return map[string]complete.Predictor{
		// claims: claim names (render dns01), and files as well.
		"claims": complete.PredictOr(inRepo(func(root string) []string {
			claims, err := repo.Claims(filepath.Join(root, repo.ClaimsDir))
			if err != nil {
				return nil
			}
			var names []string
			for _, c := range claims {
				names = append(names, c.Name)
			}
			return names
		}), complete.PredictFiles("*.yaml")),
		// classes: the Composition's sizing classes.
		"classes": inRepo(func(root string) []string {
			in, err := repo.LoadInput(filepath.Join(root, repo.CompositionPath))
			if err != nil {
				return nil
			}
			return strings.Split(in.ClassNames(), ", ")
		}),
	}
}

// inRepo predicts with the repository that holds the current folder, and
// predicts nothing outside one.
func inRepo(f func(root string) []string) complete.Predictor {
	return complete.PredictFunc(func(complete.Args) []string {
		root, err := repo.FindRoot(".")
		if err != nil {
			return nil
		}
		return f(root)
	})
}
