package nixcheck

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// RenderUnbound renders services.unbound.settings as unbound.conf, as
// testdata/unbound-conf.nix (a stand-in of how nixpkgs' unbound module
// renders them) does.
func RenderUnbound(ctx context.Context, repo string, settings map[string]any) (string, error) {
	b, err := json.Marshal(settings)
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp("", "nixcheck-unbound-*.json")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	var conf string
	expr := fmt.Sprintf(`import %s { settings = builtins.fromJSON (builtins.readFile %s); }`,
		NixString(filepath.Join(repo, "internal/nixcheck/testdata/unbound-conf.nix")), NixString(tmp.Name()))
	if err := EvalJSON(ctx, repo, expr, &conf); err != nil {
		return "", fmt.Errorf("cannot render unbound.conf: %w", err)
	}
	return conf, nil
}
