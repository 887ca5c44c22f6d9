package fluxbuild

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func cm(name, data string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n  namespace: ns\n" + data
}

// TestWalk: the folders and files the generator picks, as Flux applies them.
func TestWalk(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.yaml":                  cm("a", ""),
		"sub/b.yml":               cm("b", ""),
		"sub/deeper/c.yaml":       cm("c", ""),
		"notes.md":                "not a manifest",
		"d.json":                  `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d"}}`,
		"kust/kustomization.yaml": "resources: [e.yaml]\n",
		"kust/e.yaml":             cm("e", ""),
		"kust/unlisted.yaml":      cm("unlisted", ""),
		".git/config.yaml":        cm("git", ""),
		"multi.yaml":              cm("m1", "") + "---\n" + cm("m2", ""),
	})
	objs, errs := Build(dir)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	got := map[string]string{}
	for _, o := range objs {
		rel, _ := filepath.Rel(dir, o.File)
		got[o.Object["metadata"].(map[string]any)["name"].(string)] = rel
		if _, ok := o.Object["metadata"].(map[string]any)["annotations"]; ok {
			t.Errorf("%v: the origin annotation must not stay on the object", o.Object["metadata"])
		}
	}
	want := map[string]string{"a": "a.yaml", "b": "sub/b.yml", "c": "sub/deeper/c.yaml", "e": "kust/e.yaml", "m1": "multi.yaml", "m2": "multi.yaml"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("objects and their files (-want, +got):\n%s", diff)
	}
}

// TestYAMLAsKustomizeReadsIt: the YAML details in which a plain YAML 1.1
// reader and Flux disagree.
func TestYAMLAsKustomizeReadsIt(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.yaml": cm("a", "data:\n  dhcp: yes\n  hostname: no\n  on: off\n") +
		"---\napiVersion: homelab.dev/v1alpha1\nkind: Machine\nmetadata:\n  name: m\n  namespace: ns\nspec:\n  tags:\n  dhcp: yes\n  vmId: 1e3\n"})
	objs, errs := Build(dir)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Object["kind"].(string) < objs[j].Object["kind"].(string) })
	data := objs[0].Object["data"].(map[string]any)
	if diff := cmp.Diff(map[string]any{"dhcp": "yes", "hostname": "no", "on": "off"}, data); diff != "" {
		t.Errorf("yes, no, on, off are strings to kustomize (-want, +got):\n%s", diff)
	}
	spec := objs[1].Object["spec"].(map[string]any)
	if v, ok := spec["tags"]; !ok || v != nil {
		t.Errorf("an empty tags: is null, got %#v (present %v)", v, ok)
	}
	if spec["dhcp"] != "yes" || spec["vmId"] != int64(1000) {
		t.Errorf("dhcp: yes is a string, vmId: 1e3 is 1000; got %#v, %#v", spec["dhcp"], spec["vmId"])
	}
}

// TestRevisionFailures: what fails the whole revision names its file.
func TestRevisionFailures(t *testing.T) {
	cases := map[string]struct {
		reason string
		files  map[string]string
		want   []string // file (relative), part of the message
	}{
		"DuplicateKey":    {reason: "kustomize refuses a key given twice", files: map[string]string{"ok.yaml": cm("ok", ""), "dup.yaml": cm("a", "data:\n  k: a\n  k: b\n")}, want: []string{"dup.yaml", "already defined"}},
		"NotYAML":         {reason: "a file the generator cannot decode", files: map[string]string{"ok.yaml": cm("ok", ""), "bad.yaml": "a: [1, 2\n"}, want: []string{"bad.yaml", "Flux cannot decode it"}},
		"SameObjectTwice": {reason: "one object in two files", files: map[string]string{"a.yaml": cm("x", ""), "b.yaml": cm("x", "")}, want: []string{"", "already registered id"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := writeFiles(t, tc.files)
			objs, errs := Build(dir)
			if len(objs) > 0 || len(errs) != 1 {
				t.Fatalf("%s: want one error and no object, got %v and %d objects", tc.reason, errs, len(objs))
			}
			rel, _ := filepath.Rel(dir, errs[0].File)
			if rel == "." {
				rel = ""
			}
			if rel != tc.want[0] || !strings.Contains(errs[0].Err.Error(), tc.want[1]) {
				t.Errorf("%s: want %q naming %q, got %s: %v", tc.reason, tc.want[0], tc.want[1], rel, errs[0].Err)
			}
		})
	}
}
