package vm

// No build tag: the image cache's pruning is tested by make unit.

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// TestImageCachePrune runs hack/vm-cache-prune.sh, which hack/vm-image.sh
// runs for the base and the image layer it uses, on a cache shared by two
// checkouts: this one's layers, the other checkout's (used an hour ago, so
// possibly booting now), and layers no run used for hours. The layer in use
// is marked (touched) and only the other layers of its kind that no run used
// for two hours go; the package cache (debs) and the lock stay.
func TestImageCachePrune(t *testing.T) {
	testenv.LookPath(t, "bash")
	script := filepath.Join(testenv.RepoRoot(t), "hack", "vm-cache-prune.sh")
	now := time.Now()
	// The cache before the run, by name: how long ago each entry was last
	// touched. A name ending in / is a folder.
	cache := map[string]time.Duration{
		"base-this/":        5 * time.Hour, // built long ago, used by this run
		"base-other/":       time.Hour,     // the other checkout's, in use
		"base-old/":         3 * time.Hour,
		"base-killed.tmp/":  3 * time.Hour, // a build killed halfway
		"image-this.qcow2":  5 * time.Hour,
		"image-other.qcow2": 10 * time.Minute,
		"image-old.qcow2":   3 * time.Hour,
		"image-killed.tmp/": 3 * time.Hour, // not an image layer's name: left alone, as before
		"debs/":             9 * time.Hour,
		".lock":             9 * time.Hour,
	}
	cases := map[string]struct {
		reason string
		layer  string
		want   []string
	}{
		"Base": {
			reason: "the base in use is kept and marked; other bases go only when no run used them for two hours",
			layer:  "base-this",
			want:   []string{".lock", "base-other", "base-this", "debs", "image-killed.tmp", "image-old.qcow2", "image-other.qcow2", "image-this.qcow2"},
		},
		"Image": {
			reason: "the same for image layers",
			layer:  "image-this.qcow2",
			want:   []string{".lock", "base-killed.tmp", "base-old", "base-other", "base-this", "debs", "image-killed.tmp", "image-other.qcow2", "image-this.qcow2"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for n, ago := range cache {
				p := filepath.Join(dir, filepath.Clean(n))
				var err error
				if n[len(n)-1] == '/' {
					if err = os.Mkdir(p, 0o755); err == nil {
						// Something inside, as a real layer has.
						err = os.WriteFile(filepath.Join(p, "ok"), nil, 0o644)
					}
				} else {
					err = os.WriteFile(p, nil, 0o644)
				}
				if err == nil {
					err = os.Chtimes(p, now.Add(-ago), now.Add(-ago))
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if out, err := exec.Command(script, dir, tc.layer).CombinedOutput(); err != nil {
				t.Fatalf("%s %s %s: %v\n%s", script, dir, tc.layer, err, out)
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range ents {
				got = append(got, e.Name())
			}
			slices.Sort(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s: the cache after the run (-want, +got):\n%s", tc.reason, diff)
			}
			st, err := os.Stat(filepath.Join(dir, tc.layer))
			if err != nil {
				t.Fatal(err)
			}
			if age := time.Since(st.ModTime()); age > time.Minute {
				t.Errorf("%s: the layer in use was last touched %s ago, want now: the other checkout's run would delete it two hours after it was built", tc.reason, age.Round(time.Second))
			}
		})
	}

	// A name that is no layer of the cache is refused, and nothing goes.
	for _, layer := range []string{"debs", "../base-this", "base-missing"} {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "base-old"), 0o755); err != nil {
			t.Fatal(err)
		}
		old := now.Add(-3 * time.Hour)
		if err := os.Chtimes(filepath.Join(dir, "base-old"), old, old); err != nil {
			t.Fatal(err)
		}
		if err := exec.Command(script, dir, layer).Run(); err == nil {
			t.Errorf("%s %q: exit 0, want a refusal", script, layer)
		}
		if _, err := os.Stat(filepath.Join(dir, "base-old")); err != nil {
			t.Errorf("%s %q deleted a layer: %v", script, layer, err)
		}
	}
}
