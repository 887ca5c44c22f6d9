package labctl_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/homelab-infra/homelab-infra/internal/labctl"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestValidateAgainst: an edit the API server would refuse (a transition
// rule of the XRD's edit policy) is refused before the push, naming the
// file, the field and what to do instead; allowed edits pass; a change that
// makes Flux prune the namespace of live claims is refused. Real git.
func TestValidateAgainst(t *testing.T) {
	testenv.LookPath(t, "git")
	cases := map[string]struct {
		reason string
		edit   func(t *testing.T, root string, spec map[string]any)
		want   []string
	}{
		"Allowed": {
			reason: "class, tags and network take effect on the running VM",
			edit: func(t *testing.T, root string, s map[string]any) {
				s["class"] = "medium"
				s["tags"] = []any{"core", "edge"}
			},
		},
		"Hostname": {
			reason: "the host name is the machine's identity",
			edit:   func(t *testing.T, root string, s map[string]any) { s["hostname"] = "dns02" },
			want:   []string{"crossplane/claims/dns01.yaml: spec.hostname: Invalid value: hostname cannot change", "add a claim for the new machine and delete this one", "an edit of the claim in HEAD"},
		},
		"VMIDAndFlakeRef": {
			reason: "two fields of the edit table at once",
			edit: func(t *testing.T, root string, s map[string]any) {
				s["proxmox"].(map[string]any)["vmId"] = int64(1099)
				s["nix"] = map[string]any{"flakeRef": "git+https://git.lab.home.arpa/homelab-infra?ref=hosts/dns01#dns01"}
			},
			want: []string{"spec.proxmox.vmId: Invalid value: proxmox.vmId cannot change", "spec.nix.flakeRef: Invalid value: nix.flakeRef cannot change"},
		},
		"KeyNotEchoed": {
			reason: "bootstrap cannot change, and the message shows no key",
			edit: func(t *testing.T, root string, s map[string]any) {
				s["bootstrap"].(map[string]any)["sshAuthorizedKeys"] = []any{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAFLJ6VeZ/nBqc9gC5W59y5uJxq2icS504scLzx64ilF other@host"}
			},
			want: []string{"spec.bootstrap: ", "bootstrap cannot change"},
		},
		"NamespacePruned": {
			reason: "without namespace.yaml, Flux would prune the namespace and every claim in it",
			edit: func(t *testing.T, root string, s map[string]any) {
				if err := os.Remove(filepath.Join(root, repo.ClaimsDir, "namespace.yaml")); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"crossplane/claims: Namespace infra-machines, which HEAD applies, is gone from what Flux applies: Flux's prune would delete it, and with it the claims in it (dns01)"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			root := fixtureRepo(t, map[string]map[string]any{"dns01": runtime.DeepCopyJSON(goodClaim(t))}, "dns01", "dns02")
			write(t, filepath.Join(root, repo.UnclaimedPath), []byte("dns02\n"))
			gitIn(t, root, "init", "-q", "-b", "main")
			gitIn(t, root, "add", "-A")
			gitIn(t, root, "commit", "-q", "-m", "base")
			c := runtime.DeepCopyJSON(goodClaim(t))
			tc.edit(t, root, c["spec"].(map[string]any))
			writeYAML(t, filepath.Join(root, repo.ClaimsDir, "dns01.yaml"), c)
			r := labctl.ValidateWith(context.Background(), root, labctl.ValidateOptions{Against: "HEAD"})
			all := problems(r)
			if r.Against != "HEAD" {
				t.Errorf("%s: edits not checked against HEAD; notes %v", tc.reason, r.Notes)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("%s: want a problem containing %q, got:\n%s", tc.reason, w, all)
				}
			}
			if len(tc.want) == 0 && !r.OK() {
				t.Errorf("%s: want no problem, got:\n%s", tc.reason, all)
			}
			if strings.Contains(all, "other@host") {
				t.Errorf("%s: a key is echoed:\n%s", tc.reason, all)
			}
		})
	}
}

// TestValidateAgainstUpstream: by default edits are checked against the
// branch's upstream; a branch without one gets a note, an unknown revision
// a problem.
func TestValidateAgainstUpstream(t *testing.T) {
	testenv.LookPath(t, "git")
	origin := fixtureRepo(t, map[string]map[string]any{"dns01": runtime.DeepCopyJSON(goodClaim(t))}, "dns01")
	gitIn(t, origin, "init", "-q", "-b", "main")
	gitIn(t, origin, "add", "-A")
	gitIn(t, origin, "commit", "-q", "-m", "base")
	clone := filepath.Join(t.TempDir(), "clone")
	gitIn(t, origin, "clone", "-q", origin, clone)
	c := runtime.DeepCopyJSON(goodClaim(t))
	c["spec"].(map[string]any)["image"] = "nixos-26.05-b"
	writeYAML(t, filepath.Join(clone, repo.ClaimsDir, "dns01.yaml"), c)
	r := labctl.Validate(context.Background(), clone)
	if r.Against != "@{upstream}" || !strings.Contains(problems(r), "spec.image: Invalid value: image cannot change") {
		t.Errorf("default against the upstream: against %q, problems:\n%s", r.Against, problems(r))
	}
	gitIn(t, clone, "checkout", "-q", "-b", "topic", "--no-track")
	r = labctl.Validate(context.Background(), clone)
	if r.Against != "" || !strings.Contains(strings.Join(r.Notes, "\n"), "the branch has no upstream") {
		t.Errorf("no upstream: want a note, got against %q, notes %v", r.Against, r.Notes)
	}
	r = labctl.ValidateWith(context.Background(), clone, labctl.ValidateOptions{Against: "origin/nope"})
	if !strings.Contains(problems(r), "--against origin/nope: is not a commit") {
		t.Errorf("an unknown revision: want a problem, got:\n%s", problems(r))
	}
}
