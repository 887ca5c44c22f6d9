package nixcheck

import (
	"context"
	"fmt"
	"path/filepath"
)

// MachineExpr is a Nix expression that evaluates modules (a Nix list of
// module expressions) as one NixOS machine: testdata/machine.nix, with
// modlib as lib and NixOS's option data declared by testdata/nixos.nix (the
// stand-in for nixpkgs' NixOS modules, which declares and implements
// nothing). body is the result, with machine.nix's result bound to r and
// modlib to lib.
func MachineExpr(repo, modules, body string) (string, error) {
	tree, err := OptionTreeFile(repo)
	if err != nil {
		return "", fmt.Errorf("cannot read NixOS's option data: %w", err)
	}
	return fmt.Sprintf(`let
	  lib = %s;
	  tree = builtins.fromJSON (builtins.readFile %s);
	  r = import %s { inherit lib tree; modules = %s; };
	in %s`, LibExpr(repo), NixString(tree), NixString(filepath.Join(repo, "internal/nixcheck/testdata/machine.nix")),
		modules, body), nil
}

// EvalMachine evaluates MachineExpr's body as JSON into out.
func EvalMachine(ctx context.Context, repo, modules, body string, out any) error {
	expr, err := MachineExpr(repo, modules, body)
	if err != nil {
		return err
	}
	return EvalJSON(ctx, repo, expr, out)
}
