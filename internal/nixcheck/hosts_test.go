package nixcheck

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// nixHostNames is the flake's host list: real nix evaluating nix/lib/hosts.nix
// (what flake.nix imports) on hostsDir.
func nixHostNames(t *testing.T, root, hostsDir string) []string {
	t.Helper()
	var names []string
	expr := fmt.Sprintf("import ./nix/lib/hosts.nix (/. + %s)", NixString(hostsDir))
	if err := EvalJSON(context.Background(), root, expr, &names); err != nil {
		t.Fatalf("cannot evaluate the flake's host list: %v", err)
	}
	return names
}

// TestFlakeHostListIsTheRepoLayout: the hosts the flake builds
// (nixosConfigurations) are exactly the folders repo.Hosts finds under
// nix/hosts: the function labctl validate uses to pair hosts with claims.
func TestFlakeHostListIsTheRepoLayout(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix-instantiate")
	root := testenv.RepoRoot(t)
	hostsDir := filepath.Join(root, repo.HostsDir)
	goNames, err := repo.Hosts(hostsDir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(goNames, nixHostNames(t, root, hostsDir)); diff != "" {
		t.Errorf("the flake's host list differs from repo.Hosts(%s): -want, +got:\n%s", repo.HostsDir, diff)
	}
	for _, h := range []string{"dns01", "docker01"} {
		if !contains(goNames, h) {
			t.Errorf("host %s (an example claim) is missing from %s", h, repo.HostsDir)
		}
	}
}

// TestHostRuleAgreesOnEdgeCases runs the Go and the Nix side of the host rule
// on made-up layouts, so a change to one side alone is caught.
func TestHostRuleAgreesOnEdgeCases(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix-instantiate")
	root := testenv.RepoRoot(t)
	cases := map[string]struct {
		reason string
		files  []string
		dirs   []string
		want   []string
	}{
		"Hosts": {
			reason: "each folder with a configuration.nix is a host, sorted",
			files:  []string{"web02/configuration.nix", "dns01/configuration.nix"},
			want:   []string{"dns01", "web02"},
		},
		"FolderWithoutConfiguration": {
			reason: "a folder without configuration.nix is not a host",
			files:  []string{"dns01/configuration.nix", "notes/README.md"},
			dirs:   []string{"empty"},
			want:   []string{"dns01"},
		},
		"LooseFile": {
			reason: "a file directly in nix/hosts is not a host",
			files:  []string{"configuration.nix", "common.nix", "db01/configuration.nix"},
			want:   []string{"db01"},
		},
		"NoHosts": {
			reason: "an empty folder has no hosts",
			want:   []string{},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range tc.dirs {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range tc.files {
				p := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte("{ }\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			goNames, err := repo.Hosts(dir)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, goNames, cmpEmpty); diff != "" {
				t.Errorf("%s\nHostNames: -want, +got:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.want, nixHostNames(t, root, dir), cmpEmpty); diff != "" {
				t.Errorf("%s\nnix/lib/hosts.nix: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// cmpEmpty treats nil and empty slices alike.
var cmpEmpty = cmp.Transformer("nilToEmpty", func(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
})
