package nixcheck

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
)

// SourcePath is the store path of the named source of repo's
// nix/pkgs/sources.nix (plain builtins: real nix evaluates the file as the
// flake does), copied into the store.
func SourcePath(ctx context.Context, repo, name string) (string, error) {
	expr := fmt.Sprintf(`"${(import (/. + %s) { }).%s}"`, NixString(filepath.Join(repo, "nix/pkgs/sources.nix")), name)
	b, err := run(ctx, repo, NixEnv(), "nix-instantiate", "--read-write-mode", "--eval", "--strict", "--json", "-E", expr)
	if err != nil {
		return "", fmt.Errorf("cannot evaluate source %s: %w", name, err)
	}
	p := strings.Trim(strings.TrimSpace(string(b)), `"`)
	if !strings.HasPrefix(p, "/nix/store/") {
		return "", fmt.Errorf("source %s evaluates to %q, not a store path", name, p)
	}
	return p, nil
}

// SourceFiles lists, relative to repo, the files of the named source of
// repo's nix/pkgs/sources.nix: what the store path holds.
func SourceFiles(ctx context.Context, repo, name string) ([]string, error) {
	p, err := SourcePath(ctx, repo, name)
	if err != nil {
		return nil, err
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(p, path)
		files = append(files, rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list %s: %w", p, err)
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("source %s (%s) holds no files", name, p)
	}
	return files, nil
}
