package proxmoxsim

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// TestREADMESnippetsContent runs the README's storage step (the snippets
// content type) as a user runs it, on both releases: it adds snippets to
// the types the datastore has and leaves a datastore that has it alone.
// The command the README gave before, `pvesm set local --content
// iso,vztmpl,backup,snippets`, replaced the list (PUT /storage/{storage}
// sets each option given), so a datastore that also held disk images or
// imports lost them.
func TestREADMESnippetsContent(t *testing.T) {
	t.Parallel()
	step := readmeSnippetsStep(t)
	others := []string{"backup", "images", "import", "iso", "vztmpl"}
	cases := map[string]struct {
		reason string
		step   string
		have   []string
		want   []string
	}{
		"Adds": {
			reason: "the types the datastore has are kept, snippets added",
			step:   step, have: others,
			want: []string{"backup", "images", "import", "iso", "snippets", "vztmpl"},
		},
		"AlreadyThere": {
			reason: "a datastore that has snippets is left as it is",
			step:   step, have: []string{"iso", "snippets"},
			want: []string{"iso", "snippets"},
		},
		"Before": {
			reason: "the former command replaced the list: images and import are gone",
			step:   "pvesm set local --content iso,vztmpl,backup,snippets", have: others,
			want: []string{"backup", "iso", "snippets", "vztmpl"},
		},
	}
	for _, pve := range []int{8, 9} {
		for name, tc := range cases {
			t.Run(fmt.Sprintf("PVE%d/%s", pve, name), func(t *testing.T) {
				t.Parallel()
				s := newSim(t, func(o *Options) {
					o.PVE = pve
					o.Storages = []Storage{
						{ID: "local", Type: "dir", Content: tc.have},
						{ID: imageStorage, Type: "lvmthin", Content: []string{"images", "rootdir"}},
					}
				})
				if err := s.RunAsRoot(tc.step); err != nil {
					t.Fatal(err)
				}
				s.mu.Lock()
				got := s.storages["local"].Content
				s.mu.Unlock()
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("%s: local's content (-want, +got):\n%s", tc.reason, diff)
				}
			})
		}
	}
}

// readmeSnippetsStep is the shell block of the README's "The snippets
// datastore" step.
func readmeSnippetsStep(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "*The snippets datastore.*")
	if !ok {
		t.Fatal("README.md has no step *The snippets datastore.*")
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	block, _, closed := strings.Cut(rest, "```")
	if !ok || !closed {
		t.Fatal("README.md's snippets datastore step has no ```sh block")
	}
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		lines = append(lines, strings.TrimPrefix(l, "  "))
	}
	return strings.Join(lines, "\n")
}
