package proxmoxsim

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// API is one Proxmox VE release's published REST API schema: pve-docs'
// api-viewer/apidata.js as JSON, kept in ../shared/pve-api (its README
// states the origin and licence). The simulator reads it from there, never
// from a copy in this repo, and checks every call against it: the path and
// method, each parameter (type, enum, pattern, range, format, the keys of
// the fully described property strings) and the method's permission check.
type API struct {
	// Version is the pve-docs release the schema comes from (9.1.3).
	Version string
	// Major is the Proxmox VE major release (8 or 9).
	Major int

	root *apiNode
	// privileges are the privilege names the schema mentions: the
	// privileges that release knows (PVE 9 dropped VM.Monitor, PVE 8 has
	// no VM.GuestAgent.*).
	privileges map[string]bool
}

// Releases the shared folder holds, by major version.
var releaseFiles = map[int]string{
	8: "pve-api-8.4.2.json.gz",
	9: "pve-api-9.1.3.json.gz",
}

// APIDir is the folder of the schema data: $PVE_API_DIR, or
// ../shared/pve-api beside the checkout (found from the working directory
// upwards, as go test runs in a package folder).
func APIDir() (string, error) {
	if d := os.Getenv("PVE_API_DIR"); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "pve-api"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("cannot find the repository root to locate ../shared/pve-api (set PVE_API_DIR)")
		}
		dir = parent
	}
}

var (
	apiCacheMu sync.Mutex
	apiCache   = map[int]*API{}
)

// LoadAPI reads the schema of Proxmox VE major release 8 or 9 from APIDir.
// It is read once per process.
func LoadAPI(major int) (*API, error) {
	apiCacheMu.Lock()
	defer apiCacheMu.Unlock()
	if a := apiCache[major]; a != nil {
		return a, nil
	}
	name, ok := releaseFiles[major]
	if !ok {
		return nil, fmt.Errorf("proxmoxsim: no API schema for Proxmox VE %d (have 8 and 9)", major)
	}
	dir, err := APIDir()
	if err != nil {
		return nil, err
	}
	a, err := ReadAPI(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	apiCache[major] = a
	return a, nil
}

var releaseRE = regexp.MustCompile(`pve-api-((\d+)\.\d+\.\d+)\.json`)

// ReadAPI reads one schema file (.json or .json.gz).
func ReadAPI(path string) (*API, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the Proxmox VE API schema (set PVE_API_DIR to the pve-api data folder): %w", err)
	}
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", path, err)
		}
		if b, err = io.ReadAll(gz); err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", path, err)
		}
	}
	var nodes []rawNode
	if err := json.Unmarshal(b, &nodes); err != nil {
		return nil, fmt.Errorf("cannot decode %s: %w", path, err)
	}
	a := &API{root: &apiNode{literal: map[string]*apiNode{}}, privileges: map[string]bool{}}
	if m := releaseRE.FindStringSubmatch(filepath.Base(path)); m != nil {
		a.Version = m[1]
		a.Major, _ = strconv.Atoi(m[2])
	}
	var add func([]rawNode) error
	add = func(ns []rawNode) error {
		for _, n := range ns {
			for method, info := range n.Info {
				ep, err := newEndpoint(method, n.Path, info)
				if err != nil {
					return fmt.Errorf("%s %s: %w", method, n.Path, err)
				}
				a.insert(ep)
			}
			if err := add(n.Children); err != nil {
				return err
			}
		}
		return nil
	}
	if err := add(nodes); err != nil {
		return nil, fmt.Errorf("cannot index %s: %w", path, err)
	}
	// Every privilege the release knows is named somewhere in its
	// permission checks or their descriptions.
	for _, p := range privilegeNames(string(b)) {
		a.privileges[p] = true
	}
	return a, nil
}

// privilegeNames finds the privilege names in text: a category
// (VM, Sys, Datastore, SDN, Pool, User, Group, Realm, Permissions,
// Mapping), a dot, and letters and dots, not inside a longer word.
func privilegeNames(text string) []string {
	var out []string
	for _, cat := range []string{"VM.", "Sys.", "Datastore.", "SDN.", "Pool.", "User.", "Group.", "Realm.", "Permissions.", "Mapping."} {
		for i := 0; ; {
			j := strings.Index(text[i:], cat)
			if j < 0 {
				break
			}
			start := i + j
			end := start + len(cat)
			for end < len(text) && (isLetter(text[end]) || text[end] == '.') {
				end++
			}
			i = start + len(cat)
			name := strings.TrimRight(text[start:end], ".")
			if (start > 0 && (isLetter(text[start-1]) || text[start-1] == '.')) || len(name) == len(cat)-1 {
				continue
			}
			out = append(out, name)
		}
	}
	return out
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// Privileges lists the privileges this release knows, sorted.
func (a *API) Privileges() []string {
	out := make([]string, 0, len(a.privileges))
	for p := range a.privileges {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// IsPrivilege reports whether this release knows privilege p.
func (a *API) IsPrivilege(p string) bool { return a.privileges[p] }

type rawNode struct {
	Path     string                     `json:"path"`
	Info     map[string]json.RawMessage `json:"info"`
	Children []rawNode                  `json:"children"`
}

// Endpoint is one method of one path.
type Endpoint struct {
	Method, Path, Name string
	Parameters         *Prop
	Permissions        *Permissions
	Protected          bool
	AllowToken         bool
	ProxyTo            string
}

// Permissions is a method's permission block: user "all" (any
// authenticated user, further checks in code) or a check tree.
type Permissions struct {
	User        string `json:"user"`
	Check       []any  `json:"check"`
	Description string `json:"description"`
}

func newEndpoint(method, path string, raw json.RawMessage) (*Endpoint, error) {
	var info struct {
		Name        string          `json:"name"`
		Parameters  *Prop           `json:"parameters"`
		Permissions *Permissions    `json:"permissions"`
		Protected   perlBool        `json:"protected"`
		AllowToken  perlBool        `json:"allowtoken"`
		ProxyTo     json.RawMessage `json:"proxyto"`
	}
	if err := json.Unmarshal(raw, &info); err != nil {
		return nil, err
	}
	ep := &Endpoint{Method: method, Path: path, Name: info.Name, Parameters: info.Parameters,
		Permissions: info.Permissions, Protected: bool(info.Protected), AllowToken: bool(info.AllowToken)}
	_ = json.Unmarshal(info.ProxyTo, &ep.ProxyTo)
	if ep.Parameters == nil {
		ep.Parameters = &Prop{Type: "object"}
	}
	return ep, nil
}

// apiNode is one path segment of the API's tree: literal children, or one
// placeholder child ({node}, {vmid}, ...).
type apiNode struct {
	literal   map[string]*apiNode
	param     *apiNode
	paramName string
	methods   map[string]*Endpoint
}

func (a *API) insert(ep *Endpoint) {
	n := a.root
	for _, seg := range strings.Split(strings.Trim(ep.Path, "/"), "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			if n.param == nil {
				n.param = &apiNode{literal: map[string]*apiNode{}}
				n.paramName = strings.Trim(seg, "{}")
			}
			n = n.param
			continue
		}
		c := n.literal[seg]
		if c == nil {
			c = &apiNode{literal: map[string]*apiNode{}}
			n.literal[seg] = c
		}
		n = c
	}
	if n.methods == nil {
		n.methods = map[string]*Endpoint{}
	}
	n.methods[ep.Method] = ep
}

// Lookup finds the endpoint of an escaped request path below /api2/json and
// the values of its placeholders. pathKnown is false when no method has the
// path.
func (a *API) Lookup(method, escapedPath string) (ep *Endpoint, uriParams map[string]string, pathKnown bool) {
	n := a.root
	uriParams = map[string]string{}
	for _, seg := range strings.Split(strings.Trim(escapedPath, "/"), "/") {
		v, err := url.PathUnescape(seg)
		if err != nil {
			return nil, nil, false
		}
		if c := n.literal[v]; c != nil {
			n = c
			continue
		}
		if n.param == nil || v == "" {
			return nil, nil, false
		}
		uriParams[n.paramName] = v
		n = n.param
	}
	if n.methods == nil {
		return nil, nil, false
	}
	return n.methods[method], uriParams, true
}

// Endpoint returns the endpoint of a schema path ("/nodes/{node}/qemu").
func (a *API) Endpoint(method, path string) *Endpoint {
	n := a.root
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		if strings.HasPrefix(seg, "{") {
			n = n.param
		} else {
			n = n.literal[seg]
		}
		if n == nil {
			return nil
		}
	}
	return n.methods[method]
}

// perlBool is a flag as Perl's JSON writes it: 1, 0, or absent.
type perlBool bool

func (b *perlBool) UnmarshalJSON(d []byte) error {
	s := strings.Trim(string(d), `"`)
	*b = perlBool(s != "" && s != "0" && s != "null" && s != "false")
	return nil
}
