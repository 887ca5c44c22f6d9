package nixcheck

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if treeFile != "" {
		os.Remove(treeFile)
	}
	if agentBin.path != "" {
		os.RemoveAll(filepath.Dir(agentBin.path))
	}
	os.Exit(code)
}

// fakeAgent is the package the module tests give services.nix-gitops.package.
const fakeAgent = `{ type = "derivation"; name = "nix-gitops"; outPath = "` + fakeAgentPath + `"; meta.mainProgram = "nix-gitops"; }`

// fakeAgentPath is fakeAgent's store path.
const fakeAgentPath = "/nix/store/00000000000000000000000000000000-nix-gitops"

// mods is a Nix list of module expressions.
func mods(ms ...string) string { return "[ " + strings.Join(ms, "\n") + " ]" }

// nixosExpr is a Nix expression that evaluates modules (a Nix list)
// as a NixOS machine (testdata/machine.nix: modlib, NixOS's option data,
// the proxmox-image stand-in), binds machine.nix's result to r, and returns
// body.
func nixosExpr(t *testing.T, modules, body string) string {
	t.Helper()
	testenv.Real(t)
	testenv.LookPath(t, "nix-instantiate")
	expr, err := MachineExpr(testenv.RepoRoot(t), modules, body)
	if err != nil {
		t.Fatal(err)
	}
	return expr
}

// evalNixOS evaluates nixosExpr's result as JSON into out.
func evalNixOS(t *testing.T, modules, body string, out any) error {
	t.Helper()
	here, _ := os.Getwd()
	return EvalJSON(context.Background(), here, nixosExpr(t, modules, body), out)
}

// repoFile is a Nix path expression of a file of the repo.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	return fmt.Sprintf("(/. + %s)", NixString(filepath.Join(testenv.RepoRoot(t), rel)))
}

// flakeExpr is testdata/flakeeval.nix on the repo's flake, with modlib.
func flakeExpr(t *testing.T) string {
	t.Helper()
	root := testenv.RepoRoot(t)
	return fmt.Sprintf("(import %s { flakeDir = /. + %s; lib = %s; })",
		NixString(filepath.Join(root, "internal/nixcheck/testdata/flakeeval.nix")), NixString(root), LibExpr(root))
}

type typeCheck struct {
	Walked []string `json:"walked"`
	Failed []string `json:"failed"`
}

// checkMachine evaluates modules and forces every value they define
// (testdata/typecheck.nix). Each failed path is evaluated again on its own,
// so the result holds nix's message for it.
func checkMachine(t *testing.T, modules string) (typeCheck, map[string]string, error) {
	t.Helper()
	var c typeCheck
	if err := evalNixOS(t, modules, "r.check", &c); err != nil {
		return c, nil, err
	}
	msgs := map[string]string{}
	for _, p := range c.Failed {
		var ok bool
		body := fmt.Sprintf("builtins.deepSeq (lib.getAttrFromPath %s r.eval.config) true", nixList(strings.Split(p, ".")))
		if err := evalNixOS(t, modules, body, &ok); err != nil {
			msgs[p] = err.Error()
		}
	}
	return c, msgs, nil
}

func nixList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = NixString(x)
	}
	return "[ " + strings.Join(q, " ") + " ]"
}
