package nixcheck

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

type flakeSummary struct {
	Inputs              map[string]map[string]string `json:"inputs"`
	NixosConfigurations map[string][]string          `json:"nixosConfigurations"`
	NixosModules        []string                     `json:"nixosModules"`
	Packages            map[string]struct {
		Pname      string `json:"pname"`
		VendorHash string `json:"vendorHash"`
	} `json:"packages"`
	Checks         []string `json:"checks"`
	PackageSystems []string `json:"packageSystems"`
	Agent          struct {
		Version string `json:"version"`
		Src     string `json:"src"`
	} `json:"agent"`
	VMTestNodes []string `json:"vmTestNodes"`
	DevShells   []string `json:"devShells"`
}

// TestFlakeOutputs evaluates flake.nix's outputs with real nix against a
// stub nixpkgs (testdata/flakeeval.nix; nixpkgs itself cannot be fetched
// here) and checks what the issue asks the flake to provide.
func TestFlakeOutputs(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix-instantiate")
	root := testenv.RepoRoot(t)
	here, _ := os.Getwd()
	var got flakeSummary
	expr := fmt.Sprintf(`builtins.removeAttrs %s [ "vmTestScript" "vmTestNode" "machineModules" "modules" ]`, flakeExpr(t))
	if err := EvalJSON(context.Background(), here, expr, &got); err != nil {
		t.Fatal(err)
	}

	hosts, err := repo.Hosts(filepath.Join(root, repo.HostsDir))
	if err != nil {
		t.Fatal(err)
	}
	wantMachines := append(append([]string{}, hosts...), "template")
	sort.Strings(wantMachines)
	var machines []string
	for name, mods := range got.NixosConfigurations {
		machines = append(machines, name)
		want := filepath.Join(root, "nix/hosts", name, "configuration.nix")
		if name == "template" {
			want = filepath.Join(root, "nix/template/configuration.nix")
		}
		if !contains(mods, want) || !contains(mods, "/stub/nixpkgs/nixos/modules/virtualisation/proxmox-image.nix") {
			t.Errorf("nixosConfigurations.%s: modules %v lack %s or nixpkgs' proxmox-image.nix", name, mods, want)
		}
	}
	sort.Strings(machines)
	if diff := cmp.Diff(wantMachines, machines); diff != "" {
		t.Errorf("nixosConfigurations: -want, +got:\n%s", diff)
	}

	wantModules := []string{"base", "default", "dns-unbound", "docker-host", "monitoring-agent", "networking-static", "nix-gitops"}
	if diff := cmp.Diff(wantModules, got.NixosModules); diff != "" {
		t.Errorf("nixosModules: -want, +got:\n%s", diff)
	}

	hashes, err := ReadVendorHashes(root)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]string{"nix-gitops": "nix-gitops", "function-machine": "main", "crossplane-cli": "hack/tools/crossplane"} {
		p, ok := got.Packages[name]
		if !ok {
			t.Errorf("packages.x86_64-linux.%s is missing", name)
			continue
		}
		if p.VendorHash != hashes[key] {
			t.Errorf("packages.%s is built with vendorHash %q, want the checked %s entry %q", name, p.VendorHash, key, hashes[key])
		}
	}
	if diff := cmp.Diff([]string{"aarch64-linux", "x86_64-linux"}, got.PackageSystems); diff != "" {
		t.Errorf("packages' systems: -want, +got:\n%s", diff)
	}
	if src, err := SourcePath(context.Background(), root, "nix-gitops"); err != nil || got.Agent.Src != src || got.Agent.Version != "0.1.0" {
		t.Errorf("the agent package is built from %q at version %q; want its fileset %q (%v) and the fixed version", got.Agent.Src, got.Agent.Version, src, err)
	}
	if _, ok := got.Packages["proxmox-template"]; !ok {
		t.Error("packages.x86_64-linux.proxmox-template is missing")
	}

	for _, c := range []string{"agent-vm", "nix-gitops", "function-machine", "toplevel-dns01", "toplevel-docker01", "toplevel-template"} {
		if !contains(got.Checks, c) {
			t.Errorf("checks.x86_64-linux.%s is missing (have %v)", c, got.Checks)
		}
	}
	if diff := cmp.Diff([]string{"machine"}, got.VMTestNodes); diff != "" {
		t.Errorf("the VM test's nodes: -want, +got:\n%s", diff)
	}
	if !contains(got.DevShells, "default") {
		t.Error("devShells.x86_64-linux.default is missing")
	}
}

// TestVMTestScriptIsPython hands the VM test's testScript, as the flake
// renders it, to python3's parser: a syntax error would only show up in
// `nix flake check` on a user's machine otherwise.
func TestVMTestScriptIsPython(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix")
	py := testenv.LookPath(t, "python3")
	here, _ := os.Getwd()
	expr := flakeExpr(t) + ".vmTestScript"
	script, err := run(context.Background(), here, NixEnv(), "nix", "eval", "--impure", "--raw", "--expr", expr)
	if err != nil {
		t.Fatalf("cannot render the VM test's script: %v", err)
	}
	for _, want := range []string{"subtest(\"a failing health check rolls back\")", "subtest(\"a force-push is refused\")", "apply() == 20", "apply() == 21"} {
		if !strings.Contains(string(script), want) {
			t.Errorf("the VM test's script lacks %q", want)
		}
	}
	f := filepath.Join(t.TempDir(), "testScript.py")
	if err := os.WriteFile(f, script, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(py, "-c", "import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])", f).CombinedOutput(); err != nil {
		t.Errorf("the VM test's testScript is not valid Python: %v\n%s", err, out)
	}
}

type flakeLock struct {
	Nodes map[string]struct {
		Locked   map[string]any    `json:"locked"`
		Original map[string]string `json:"original"`
		Inputs   map[string]string `json:"inputs"`
	} `json:"nodes"`
	Root    string `json:"root"`
	Version int    `json:"version"`
}

// TestFlakeLockPinsStableNixpkgs checks the pin's shape: a github lock of
// NixOS/nixpkgs on a nixos-YY.MM release branch, with a full rev and narHash.
func TestFlakeLockPinsStableNixpkgs(t *testing.T) {
	root := testenv.RepoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "flake.lock"))
	if err != nil {
		t.Fatal(err)
	}
	var lock flakeLock
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatalf("cannot parse flake.lock: %v", err)
	}
	name := lock.Nodes[lock.Root].Inputs["nixpkgs"]
	n, ok := lock.Nodes[name]
	if !ok {
		t.Fatalf("flake.lock has no node for the root's nixpkgs input (%q)", name)
	}
	if n.Original["type"] != "github" || n.Original["owner"] != "NixOS" || n.Original["repo"] != "nixpkgs" ||
		!regexp.MustCompile(`^nixos-\d\d\.(05|11)$`).MatchString(n.Original["ref"]) {
		t.Errorf("nixpkgs follows %v, want github:NixOS/nixpkgs on a stable nixos-YY.MM branch", n.Original)
	}
	if rev, _ := n.Locked["rev"].(string); !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(rev) {
		t.Errorf("locked rev %q is not a full commit id", rev)
	}
	if h, _ := n.Locked["narHash"].(string); !regexp.MustCompile(`^sha256-[A-Za-z0-9+/]{43}=$`).MatchString(h) {
		t.Errorf("locked narHash %q is not an SRI sha256", h)
	}
}

// TestFlakeLockMatchesInputs asks real nix whether flake.lock is complete and
// current for flake.nix's inputs (nix flake metadata --no-update-lock-file
// fails if it would have to change the lock), without fetching anything.
func TestFlakeLockMatchesInputs(t *testing.T) {
	testenv.Real(t)
	testenv.LookPath(t, "nix")
	root := testenv.RepoRoot(t)
	flakeNix, err := os.ReadFile(filepath.Join(root, "flake.nix"))
	if err != nil {
		t.Fatal(err)
	}
	lock, err := os.ReadFile(filepath.Join(root, "flake.lock"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		reason string
		edit   func(string) string
		ok     bool
	}{
		"AsCommitted": {reason: "the repo's flake.nix and flake.lock agree", edit: func(s string) string { return s }, ok: true},
		"OtherBranch": {
			reason: "an input moved to another branch needs a new lock, which must be refused",
			edit: func(s string) string {
				return strings.Replace(s, `"github:NixOS/nixpkgs/nixos-26.05"`, `"github:NixOS/nixpkgs/nixos-25.11"`, 1)
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(tc.edit(string(flakeNix))), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "flake.lock"), lock, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := run(context.Background(), dir, NixEnv(), "nix", "flake", "metadata", "--json", "--no-update-lock-file",
				"--offline", "--option", "download-attempts", "1", "path:"+dir)
			if (err == nil) != tc.ok {
				t.Errorf("%s\nnix flake metadata: err = %v, want ok = %v", tc.reason, err, tc.ok)
			}
		})
	}
}
