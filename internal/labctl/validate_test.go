package labctl_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/homelab-infra/homelab-infra/internal/labctl"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestValidateRepo runs labctl validate on the repository itself: the example
// claims and the real nix/hosts must agree.
func TestValidateRepo(t *testing.T) {
	r := labctl.Validate(context.Background(), testenv.RepoRoot(t))
	if !r.OK() {
		var b bytes.Buffer
		r.Print(&b)
		t.Fatalf("the repository does not validate:\n%s", b.String())
	}
	if r.Claims < 2 || r.Hosts < 2 {
		t.Errorf("want at least the 2 example claims and hosts, got %d claims, %d hosts", r.Claims, r.Hosts)
	}
}

// claim returns a copy of the good dns01 claim with a new name, host name,
// address and VM id, so several can live in one repo.
func claim(t *testing.T, name, ip string, vmID int64) map[string]any {
	t.Helper()
	c := runtime.DeepCopyJSON(goodClaim(t))
	c["metadata"].(map[string]any)["name"] = name
	s := c["spec"].(map[string]any)
	s["hostname"] = name
	s["network"].(map[string]any)["ip"] = ip
	s["proxmox"].(map[string]any)["vmId"] = vmID
	s["nix"] = map[string]any{"flakeRef": "git+https://git.lab.home.arpa/homelab-infra?ref=main#" + name}
	return c
}

// TestValidateRepoRules covers the checks that span files: duplicates,
// flake refs against nix/hosts, hosts without claims, the unclaimed list.
func TestValidateRepoRules(t *testing.T) {
	cases := map[string]struct {
		reason    string
		claims    func(t *testing.T) map[string]map[string]any
		hosts     []string
		unclaimed string
		extra     map[string]string // more files: path -> content
		want      []string          // each must appear in some problem
	}{
		"DuplicateHostname": {
			reason: "two claims for one host name",
			claims: func(t *testing.T) map[string]map[string]any {
				b := claim(t, "dns02", "10.0.10.54", 1054)
				b["spec"].(map[string]any)["hostname"] = "dns01"
				return map[string]map[string]any{"a": claim(t, "dns01", "10.0.10.53", 1053), "b": b}
			},
			hosts: []string{"dns01", "dns02"},
			want:  []string{"crossplane/claims/b.yaml: spec.hostname: dns01 is also the host name of crossplane/claims/a.yaml"},
		},
		"DuplicateIP": {
			reason: "two machines on one static address",
			claims: func(t *testing.T) map[string]map[string]any {
				return map[string]map[string]any{"a": claim(t, "dns01", "10.0.10.53", 1053), "b": claim(t, "dns02", "10.0.10.53", 1054)}
			},
			hosts: []string{"dns01", "dns02"},
			want:  []string{"crossplane/claims/b.yaml: spec.network.ip: 10.0.10.53 is also the static IP of crossplane/claims/a.yaml"},
		},
		"DuplicateVMID": {
			reason: "two machines with one VM id",
			claims: func(t *testing.T) map[string]map[string]any {
				return map[string]map[string]any{"a": claim(t, "dns01", "10.0.10.53", 1053), "b": claim(t, "dns02", "10.0.10.54", 1053)}
			},
			hosts: []string{"dns01", "dns02"},
			want:  []string{"crossplane/claims/b.yaml: spec.proxmox.vmId: 1053 is also the VM id of crossplane/claims/a.yaml"},
		},
		"VMIDIsTemplate": {
			reason: "a claim on a template's id would adopt the template",
			claims: func(t *testing.T) map[string]map[string]any {
				return map[string]map[string]any{"a": claim(t, "dns01", "10.0.10.53", 9002)}
			},
			hosts: []string{"dns01"},
			want:  []string{"crossplane/claims/a.yaml: spec.proxmox.vmId: 9002 is the template VM of image nixos-26.05"},
		},
		"VMIDMissing": {
			reason: "the VM id is required: it is how a rebuilt cluster finds the VM",
			claims: func(t *testing.T) map[string]map[string]any {
				c := claim(t, "dns01", "10.0.10.53", 1053)
				delete(c["spec"].(map[string]any)["proxmox"].(map[string]any), "vmId")
				return map[string]map[string]any{"a": c}
			},
			hosts: []string{"dns01"},
			want:  []string{"crossplane/claims/a.yaml: spec.proxmox.vmId is required"},
		},
		"FlakeRefToMissingHost": {
			reason: "the flake ref names a host nix/hosts lacks",
			claims: func(t *testing.T) map[string]map[string]any {
				return map[string]map[string]any{"a": claim(t, "dns01", "10.0.10.53", 1053)}
			},
			want: []string{`crossplane/claims/a.yaml: spec.nix.flakeRef names host "dns01", but nix/hosts/dns01/configuration.nix does not exist`},
		},
		"DefaultFlakeRefToMissingHost": {
			reason: "the site-default flake ref also needs its host",
			claims: func(t *testing.T) map[string]map[string]any {
				c := claim(t, "dns01", "10.0.10.53", 1053)
				delete(c["spec"].(map[string]any), "nix")
				return map[string]map[string]any{"a": c}
			},
			want: []string{`crossplane/claims/a.yaml: spec.nix.flakeRef names host "dns01"`},
		},
		"HostWithoutClaim": {
			reason: "a host nobody claims",
			claims: func(t *testing.T) map[string]map[string]any {
				return map[string]map[string]any{"a": claim(t, "dns01", "10.0.10.53", 1053)}
			},
			hosts: []string{"dns01", "web01"},
			want:  []string{"nix/hosts/web01: host web01 has no claim in crossplane/claims"},
		},
		"UnclaimedListStale": {
			reason: "the unclaimed list names a claimed host and a missing one",
			claims: func(t *testing.T) map[string]map[string]any {
				return map[string]map[string]any{"a": claim(t, "dns01", "10.0.10.53", 1053)}
			},
			hosts:     []string{"dns01"},
			unclaimed: "# hosts without a VM\ndns01\nghost # gone\n",
			want: []string{
				"crossplane/unclaimed-hosts.txt: line 2: host dns01 is listed as unclaimed but has a claim",
				"crossplane/unclaimed-hosts.txt: line 3: ghost is not a host in nix/hosts",
			},
		},
		"NotAClaim": {
			reason: "crossplane/claims holds claims only",
			claims: func(t *testing.T) map[string]map[string]any {
				return map[string]map[string]any{"a": claim(t, "dns01", "10.0.10.53", 1053)}
			},
			hosts: []string{"dns01"},
			extra: map[string]string{"crossplane/claims/z.yaml": "apiVersion: homelab.dev/v1alpha1\nkind: Machin\nmetadata: {name: x}\n"},
			want:  []string{"crossplane/claims/z.yaml: kind: homelab.dev/v1alpha1 Machin is not a Machine claim"},
		},
		"SecondDocument": {
			reason: "problems in a multi-document file name the document",
			claims: func(t *testing.T) map[string]map[string]any { return nil },
			hosts:  []string{"dns01"},
			extra: map[string]string{"crossplane/claims/z.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n---\n" +
				"apiVersion: homelab.dev/v1alpha1\nkind: Machine\nmetadata: {name: x, namespace: infra-machines}\nspec: {class: small}\n"},
			want: []string{"crossplane/claims/z.yaml#2: spec.hostname is required"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			root := fixtureRepo(t, tc.claims(t), tc.hosts...)
			if tc.unclaimed != "" {
				write(t, filepath.Join(root, repo.UnclaimedPath), []byte(tc.unclaimed))
			}
			for p, content := range tc.extra {
				write(t, filepath.Join(root, p), []byte(content))
			}
			r := labctl.Validate(context.Background(), root)
			var got []string
			for _, p := range r.Problems {
				got = append(got, p.String())
			}
			all := strings.Join(got, "\n")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("%s: want a problem containing\n  %s\ngot:\n%s", tc.reason, w, all)
				}
			}
		})
	}
}

// TestUnclaimedHostIsFine: a host listed as intentionally unclaimed passes.
func TestUnclaimedHostIsFine(t *testing.T) {
	root := fixtureRepo(t, map[string]map[string]any{"a": claim(t, "dns01", "10.0.10.53", 1053)}, "dns01", "spare")
	write(t, filepath.Join(root, repo.UnclaimedPath), []byte("spare # built by hand for now\n"))
	if r := labctl.Validate(context.Background(), root); !r.OK() {
		t.Errorf("want no problems, got %v", r.Problems)
	}
}

// TestNewMachine scaffolds a machine into a repo and validates the result.
func TestNewMachine(t *testing.T) {
	root := fixtureRepo(t, nil)
	paths, err := labctl.Scaffold(root, labctl.NewMachine{
		Name: "web01", Namespace: "infra-machines", Class: "medium", Role: "web", // Image left out: the only one applies
		IP: "10.0.10.80", CIDR: "10.0.10.0/24", Gateway: "10.0.10.1", DNS: []string{"10.0.10.53"},
		AdminUser: "ops", SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAFLJ6VeZ/nBqc9gC5W59y5uJxq2icS504scLzx64ilF ops@workstation"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(root, "crossplane/claims/web01.yaml"), filepath.Join(root, "nix/hosts/web01/configuration.nix")}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("written paths (-want, +got):\n%s", diff)
	}
	if r := labctl.Validate(context.Background(), root); !r.OK() {
		t.Errorf("the scaffolded machine does not validate: %v", r.Problems)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "new-web01."+filepath.Base(p)+".golden", b)
	}

	if _, err := labctl.Scaffold(root, labctl.NewMachine{Name: "web01", Namespace: "infra-machines", Class: "medium", Role: "web", Image: "nixos-26.05", AdminUser: "ops", SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAFLJ6VeZ/nBqc9gC5W59y5uJxq2icS504scLzx64ilF x"}}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("scaffolding over an existing machine: want an 'already exists' error, got %v", err)
	}
	_, err = labctl.Scaffold(root, labctl.NewMachine{Name: "db01", Namespace: "infra-machines", Class: "huge", Role: "db", Image: "nixos-26.05", AdminUser: "ops", SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAFLJ6VeZ/nBqc9gC5W59y5uJxq2icS504scLzx64ilF x"}})
	if err == nil || !strings.Contains(err.Error(), "spec.class: huge is not a class of the function input; use one of: large, medium, small") {
		t.Errorf("an unknown class: want the list of classes, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "nix/hosts/db01")); err == nil {
		t.Errorf("a refused scaffold must write nothing")
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testenv.Golden(t, filepath.Join("testdata", name), got, *update)
}

// TestRenderGolden pins what `labctl render` prints for the example claims.
func TestRenderGolden(t *testing.T) {
	root := testenv.RepoRoot(t)
	rs, err := labctl.Render(context.Background(), root, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := labctl.Print(&b, rs, labctl.RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, name := range []string{"dns01", "docker01"} {
		for _, want := range []string{"kind: VirtualMachine\n", "kind: File\n", "name: " + name + "-vm\n", "# user-data of " + name + ", decoded"} {
			if !strings.Contains(out, want) {
				t.Errorf("render output lacks %q for %s", want, name)
			}
		}
	}
	golden(t, "render.golden", b.Bytes())

	// One claim by name, user-data only: exactly the bytes the VM gets.
	rs, err = labctl.Render(context.Background(), root, []string{"docker01"})
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if err := labctl.Print(&b, rs, labctl.RenderOptions{UserDataOnly: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "#cloud-config\nhostname: docker01\n") {
		t.Errorf("render --user-data docker01: want docker01's user-data, got:\n%s", b.String())
	}
	if _, err := labctl.Render(context.Background(), root, []string{"nosuch"}); err == nil {
		t.Errorf("rendering an unknown claim must fail")
	}
}

// TestRenderRefusesBadClaim: render fails with the function's message.
func TestRenderRefusesBadClaim(t *testing.T) {
	c := claim(t, "dns01", "10.0.20.5", 1053)
	root := fixtureRepo(t, map[string]map[string]any{"a": c}, "dns01")
	_, err := labctl.Render(context.Background(), root, nil)
	if err == nil || !strings.Contains(err.Error(), "crossplane/claims/a.yaml: invalid Machine dns01, nothing composed:\nspec.network.ip: 10.0.20.5 is outside spec.network.cidr") {
		t.Errorf("want the function's message with the file, got %v", err)
	}
}

// TestRenderSecretKeys: keys held in a cluster Secret cannot be rendered
// offline; render says which Secret it would need.
func TestRenderSecretKeys(t *testing.T) {
	c := claim(t, "dns01", "10.0.10.53", 1053)
	boot := c["spec"].(map[string]any)["bootstrap"].(map[string]any)
	delete(boot, "sshAuthorizedKeys")
	boot["sshAuthorizedKeysSecretRef"] = map[string]any{"name": "ops-keys"}
	root := fixtureRepo(t, map[string]map[string]any{"a": c}, "dns01")
	if r := labctl.Validate(context.Background(), root); !r.OK() {
		t.Fatalf("a claim with a Secret reference is valid: %v", r.Problems)
	}
	_, err := labctl.Render(context.Background(), root, nil)
	if err == nil || !strings.Contains(err.Error(), "Secret infra-machines/ops-keys") {
		t.Errorf("want an error naming Secret infra-machines/ops-keys, got %v", err)
	}
}

// TestNewMachinePicksAFreeVMID: without --vm-id the new claim takes one
// above the repo's highest, never a template's.
func TestNewMachinePicksAFreeVMID(t *testing.T) {
	cases := map[string]struct {
		reason string
		have   int64
		want   string
	}{
		"AboveHighest": {reason: "one above the highest claim's id", have: 1053, want: "vmId: 1054"},
		"SkipTemplate": {reason: "the template's id is never picked", have: 9001, want: "vmId: 9003"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			root := fixtureRepo(t, map[string]map[string]any{"a": claim(t, "dns01", "10.0.10.53", tc.have)}, "dns01")
			paths, err := labctl.Scaffold(root, labctl.NewMachine{
				Name: "web01", Namespace: "infra-machines", Class: "medium", AdminUser: "ops",
				SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAFLJ6VeZ/nBqc9gC5W59y5uJxq2icS504scLzx64ilF ops@workstation"},
			})
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(paths[0])
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), tc.want) {
				t.Errorf("%s: want %q in the claim:\n%s", tc.reason, tc.want, b)
			}
		})
	}
}
