// Package repo reads this repository's Crossplane files: the Composition's
// function input (the one place classes and site defaults are written) and
// the Machine claims. labctl and the tests read the repo through it.
package repo

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// Paths of the repo's files, relative to its root.
const (
	XRDPath         = "crossplane/xrd.yaml"
	CompositionPath = "crossplane/composition.yaml"
	ClaimsDir       = "crossplane/claims"
	HostsDir        = "nix/hosts"
	// UnclaimedPath lists nix hosts that intentionally have no claim, one per
	// line ('#' starts a comment).
	UnclaimedPath = "crossplane/unclaimed-hosts.txt"
)

// Doc is one YAML document of a file.
type Doc struct {
	File   string // path as given
	Index  int    // 0-based document index within the file
	Object map[string]any
}

// Where names the document for messages: file, plus #n for multi-doc files.
func (d Doc) Where() string {
	if d.Index == 0 {
		return d.File
	}
	return fmt.Sprintf("%s#%d", d.File, d.Index+1)
}

// Kind is the document's apiVersion and kind.
func (d Doc) Kind() (apiVersion, kind string) {
	a, _ := d.Object["apiVersion"].(string)
	k, _ := d.Object["kind"].(string)
	return a, k
}

// Claim is a Machine claim read from a file.
type Claim struct {
	Doc
	Name      string
	Namespace string
	Spec      *machine.Spec
}

// ReadDocs reads every non-empty YAML document of a file.
func ReadDocs(path string) ([]Doc, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s: %w", path, err)
	}
	defer f.Close()
	return ReadDocsFrom(path, f)
}

// ReadDocsFrom reads every non-empty YAML document from r; path names it in
// messages ("-" for stdin).
func ReadDocsFrom(path string, in io.Reader) ([]Doc, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var docs []Doc
	for i := 0; ; i++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", path, err)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		obj := map[string]any{}
		if err := yaml.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("%s: document %d is not valid YAML: %w", path, i+1, err)
		}
		docs = append(docs, Doc{File: path, Index: i, Object: obj})
	}
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l...)
			out = append(out, '\n')
		}
	}
	return out
}

// IsClaim tells whether a document is a Machine claim.
func IsClaim(d Doc) bool {
	a, k := d.Kind()
	return a == machine.APIVersion && k == machine.ClaimKind
}

// ParseClaim reads a Machine claim out of a document. The spec decodes
// leniently (unknown fields are the schema check's job, which names them).
func ParseClaim(d Doc) (*Claim, error) {
	c := &Claim{Doc: d}
	md, _ := d.Object["metadata"].(map[string]any)
	c.Name, _ = md["name"].(string)
	c.Namespace, _ = md["namespace"].(string)
	raw, ok := d.Object["spec"]
	if !ok {
		return c, fmt.Errorf("%s: spec is required", d.Where())
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return c, fmt.Errorf("%s: cannot encode spec: %w", d.Where(), err)
	}
	if c.Spec, err = machine.DecodeSpec(b); err != nil {
		return c, fmt.Errorf("%s: %w", d.Where(), err)
	}
	return c, nil
}

// ClaimFiles lists the YAML files in a claims folder, sorted.
func ClaimFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot list the claims in %s: %w", dir, err)
	}
	var files []string
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			files = append(files, filepath.Join(dir, n))
		}
	}
	sort.Strings(files)
	return files, nil
}

// CompositionInput reads the function-machine step's input out of the
// Composition file, as JSON.
func CompositionInput(path string) ([]byte, error) {
	docs, err := ReadDocs(path)
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		if _, k := d.Kind(); k != "Composition" {
			continue
		}
		spec, _ := d.Object["spec"].(map[string]any)
		steps, _ := spec["pipeline"].([]any)
		for _, s := range steps {
			step, _ := s.(map[string]any)
			ref, _ := step["functionRef"].(map[string]any)
			if ref["name"] != machine.FunctionRef {
				continue
			}
			in, ok := step["input"]
			if !ok {
				return nil, fmt.Errorf("%s: the %s step has no input", path, machine.FunctionRef)
			}
			return json.Marshal(in)
		}
	}
	return nil, fmt.Errorf("%s: no Composition with a pipeline step using function %s", path, machine.FunctionRef)
}

// LoadInput reads and checks the function input from the Composition.
func LoadInput(path string) (*machine.Input, error) {
	b, err := CompositionInput(path)
	if err != nil {
		return nil, err
	}
	in, err := machine.ParseInput(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return in, nil
}

// XRFor is the XMachine Crossplane makes of a claim: same spec, a claimRef,
// cluster-scoped. labctl render and the tests feed it to the function.
func XRFor(c *Claim) map[string]any {
	spec := map[string]any{}
	if s, ok := c.Object["spec"].(map[string]any); ok {
		for k, v := range s {
			spec[k] = v
		}
	}
	spec["claimRef"] = map[string]any{
		"apiVersion": machine.APIVersion,
		"kind":       machine.ClaimKind,
		"name":       c.Name,
		"namespace":  c.Namespace,
	}
	return map[string]any{
		"apiVersion": machine.APIVersion,
		"kind":       machine.XRKind,
		"metadata":   map[string]any{"name": c.Name},
		"spec":       spec,
	}
}

// Hosts lists the Nix hosts: every folder of dir that holds a
// configuration.nix, sorted. It is the same rule as nix/lib/hosts.nix, so
// the flake and labctl agree about which hosts exist.
func Hosts(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot list the Nix hosts in %s: %w", dir, err)
	}
	var hosts []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "configuration.nix")); err == nil {
			hosts = append(hosts, e.Name())
		}
	}
	sort.Strings(hosts)
	return hosts, nil
}

// Unclaimed reads the list of hosts that intentionally have no claim. A
// missing file is an empty list.
func Unclaimed(path string) (map[string]int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]int{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	out := map[string]int{}
	for i, l := range strings.Split(string(b), "\n") {
		if j := strings.IndexByte(l, '#'); j >= 0 {
			l = l[:j]
		}
		if l = strings.TrimSpace(l); l != "" {
			out[l] = i + 1
		}
	}
	return out, nil
}

// FlakeAttr is the host a spec's flake ref points at: the part after '#', or
// the host name when the ref is left to the site default (flakeRepo#hostname).
func FlakeAttr(s *machine.Spec) string {
	if s.Nix.FlakeRef == "" {
		return s.Hostname
	}
	if i := strings.LastIndexByte(s.Nix.FlakeRef, '#'); i >= 0 {
		return s.Nix.FlakeRef[i+1:]
	}
	return ""
}

// ReadClaims reads the Machine claims in the given files, in order; other
// documents (a Namespace, say) are skipped.
func ReadClaims(paths ...string) ([]*Claim, error) {
	var claims []*Claim
	for _, p := range paths {
		docs, err := ReadDocs(p)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			if !IsClaim(d) {
				continue
			}
			c, err := ParseClaim(d)
			if err != nil {
				return nil, err
			}
			claims = append(claims, c)
		}
	}
	return claims, nil
}

// Claims reads every Machine claim in a claims folder.
func Claims(dir string) ([]*Claim, error) {
	files, err := ClaimFiles(dir)
	if err != nil {
		return nil, err
	}
	return ReadClaims(files...)
}

// FindRoot is the repository that holds dir: dir itself or the nearest
// parent with crossplane/xrd.yaml, so that labctl works from any sub-folder
// (as git and kubectl kustomize do).
func FindRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("cannot resolve %s: %w", dir, err)
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, XRDPath)); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s is not inside a homelab-infra repository (no %s there or in any parent folder); run labctl in the repository or give -C DIR", abs, XRDPath)
		}
	}
}
