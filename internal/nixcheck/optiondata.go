package nixcheck

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// NixOS's published option declarations (../shared/nixos-options, data read
// through a variable and never copied into the repo; its ORIGIN.md says
// where each file comes from and what it lacks).
const (
	// OptionsPrimary: options.json entries of nixos-unstable, 2026-08, for
	// the options this repo used (present or confirmed absent).
	OptionsPrimary = "nixos-unstable-2026-08-24.used-options.json"
	// OptionsFallback: every option of nixos-unstable, 2024-12, scraped from
	// the options page (types and defaults as text).
	OptionsFallback = "ieviev-nixos-options-unstable-2024-12.json.gz"
	// OptionsMissing: upstream options in neither file, each with the
	// nixpkgs file that declares it (a short list, kept in this repo).
	OptionsMissing = "testdata/nixos-options-missing.json"
)

// OptionsDir is the folder of the option data: NIXOS_OPTIONS_DIR, or
// ../shared/nixos-options beside the checkout.
func OptionsDir(repo string) string {
	if d := os.Getenv("NIXOS_OPTIONS_DIR"); d != "" {
		return d
	}
	return filepath.Join(repo, "..", "shared", "nixos-options")
}

// Option is one NixOS option as the data declares it.
type Option struct {
	Name    string
	Type    *Type
	Default json.RawMessage // a literal default, or nil
	// Source says which data it comes from and where nixpkgs declares it.
	Source string
}

// LoadOptions reads the three sources: the primary data wins over the
// fallback; an entry of the missing list that either file has is an error
// (the list must stay the short list of what the data lacks).
func LoadOptions(dataDir, missingFile string) (map[string]*Option, error) {
	opts := map[string]*Option{}

	var primary struct {
		Options []struct {
			Name         string   `json:"name"`
			Present      bool     `json:"present"`
			Type         string   `json:"type"`
			Declarations []string `json:"declarations"`
			Default      *string  `json:"default"`
		} `json:"options"`
	}
	if err := readJSON(filepath.Join(dataDir, OptionsPrimary), &primary); err != nil {
		return nil, err
	}
	for _, o := range primary.Options {
		if !o.Present {
			continue
		}
		opts[o.Name] = &Option{Name: o.Name, Type: ParseTypeDesc(o.Type), Default: nixLiteral(o.Default),
			Source: "nixos-unstable 2026-08 options.json, " + strings.Join(o.Declarations, ", ")}
	}

	f, err := os.Open(filepath.Join(dataDir, OptionsFallback))
	if err != nil {
		return nil, fmt.Errorf("cannot read the NixOS option data: %w (set NIXOS_OPTIONS_DIR to the folder of %s)", err, OptionsFallback)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", OptionsFallback, err)
	}
	var fallback []struct {
		Name, Type, Default string
	}
	if err := json.NewDecoder(gz).Decode(&fallback); err != nil {
		return nil, fmt.Errorf("cannot decode %s: %w", OptionsFallback, err)
	}
	for _, o := range fallback {
		name := fallbackName(o.Name)
		if _, ok := opts[name]; ok {
			continue
		}
		def := normalizeDesc(o.Default)
		opts[name] = &Option{Name: name, Type: ParseTypeDesc(o.Type), Default: nixLiteral(&def), Source: "nixos-unstable 2024-12 options page"}
	}

	var missing []struct {
		Name       string  `json:"name"`
		Type       string  `json:"type"`
		Default    *string `json:"default"`
		DeclaredIn string  `json:"declaredIn"`
	}
	if err := readJSON(missingFile, &missing); err != nil {
		return nil, err
	}
	for _, o := range missing {
		if _, ok := opts[o.Name]; ok {
			return nil, fmt.Errorf("%s lists %s as missing from the option data, but the data has it (%s): remove it from the list", missingFile, o.Name, opts[o.Name].Source)
		}
		if o.DeclaredIn == "" {
			return nil, fmt.Errorf("%s: %s names no declaredIn (the nixpkgs file and commit it was read from)", missingFile, o.Name)
		}
		opts[o.Name] = &Option{Name: o.Name, Type: ParseTypeDesc(o.Type), Default: nixLiteral(o.Default), Source: "missing from the data; " + o.DeclaredIn}
	}
	return opts, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read the NixOS option data: %w (set NIXOS_OPTIONS_DIR to the folder holding it)", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("cannot decode %s: %w", path, err)
	}
	return nil
}

// fallbackName turns the scraped list's placeholders back into NixOS's:
// "_name_" was "<name>", "_" was "*".
func fallbackName(n string) string {
	parts := strings.Split(n, ".")
	for i, p := range parts {
		switch p {
		case "_name_":
			parts[i] = "<name>"
		case "_":
			parts[i] = "*"
		}
	}
	return strings.Join(parts, ".")
}

var nixIntRE = regexp.MustCompile(`^-?[0-9]+$`)

// nixLiteral is a default written as a Nix literal (true, 5, "x", [ ],
// { }, [ "a" "b" ]) as JSON; anything else (an expression) is nil: such an
// option has no default in the stand-in.
func nixLiteral(s *string) json.RawMessage {
	if s == nil {
		return nil
	}
	v := strings.TrimSpace(*s)
	switch {
	case v == "true" || v == "false" || v == "null" || nixIntRE.MatchString(v):
		return json.RawMessage(v)
	case v == "[ ]" || v == "[]":
		return json.RawMessage("[]")
	case v == "{ }" || v == "{}":
		return json.RawMessage("{}")
	case strings.HasPrefix(v, `"`):
		if str, ok := nixString(v); ok {
			b, _ := json.Marshal(str)
			return b
		}
	case strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]"):
		var items []string
		rest := strings.TrimSpace(v[1 : len(v)-1])
		for rest != "" {
			end := strings.Index(rest[1:], `"`)
			if !strings.HasPrefix(rest, `"`) || end < 0 {
				return nil
			}
			str, ok := nixString(rest[:end+2])
			if !ok {
				return nil
			}
			items = append(items, str)
			rest = strings.TrimSpace(rest[end+2:])
		}
		b, _ := json.Marshal(items)
		return b
	}
	return nil
}

// nixString reads a double-quoted Nix string without interpolation.
func nixString(v string) (string, bool) {
	if len(v) < 2 || !strings.HasSuffix(v, `"`) || strings.Contains(v, "${") {
		return "", false
	}
	s, err := strconv.Unquote(v)
	if err != nil {
		return "", false
	}
	return s, true
}

// optNode is a node of the option tree: an option, or names below it.
type optNode struct {
	opt      *Option
	children map[string]*optNode
}

// OptionTree is the JSON testdata/nixos.nix declares the options from: a
// tree of names whose leaves are {"_option": {...}}; the options below an
// option whose type holds a submodule ("users.users.<name>.isNormalUser")
// are that submodule's options. Orphans (entries below an option whose type
// has no submodule) are returned, sorted, and left out.
func OptionTree(opts map[string]*Option) (json.RawMessage, []string, error) {
	root := &optNode{children: map[string]*optNode{}}
	names := make([]string, 0, len(opts))
	for n := range opts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		node := root
		for _, p := range strings.Split(n, ".") {
			c, ok := node.children[p]
			if !ok {
				c = &optNode{children: map[string]*optNode{}}
				node.children[p] = c
			}
			node = c
		}
		node.opt = opts[n]
	}
	var orphans []string
	tree := render(root, nil, &orphans)
	b, err := json.Marshal(tree)
	sort.Strings(orphans)
	return b, orphans, err
}

func render(n *optNode, path []string, orphans *[]string) map[string]any {
	out := map[string]any{}
	for name, c := range n.children {
		p := append(append([]string{}, path...), name)
		if c.opt == nil {
			out[name] = render(c, p, orphans)
			continue
		}
		t, used := attach(c.opt.Type, c, p, orphans)
		o := map[string]any{"type": t, "source": c.opt.Source}
		if c.opt.Default != nil {
			o["default"] = c.opt.Default
		}
		out[name] = map[string]any{"_option": o}
		noteOrphans(c, p, used, orphans)
	}
	return out
}

// attach copies t with the options below node given to its submodules:
// directly, below "<name>" for attribute sets, below "*" for lists. It
// returns the names below node that it used.
func attach(t *Type, node *optNode, path []string, orphans *[]string) (*Type, map[string]bool) {
	c := *t
	used := map[string]bool{}
	switch t.Kind {
	case "submodule":
		b, _ := json.Marshal(render(node, path, orphans))
		c.Options = b
		for k := range node.children {
			used[k] = true
		}
	case "attrsOf", "lazyAttrsOf", "listOf", "nonEmptyListOf":
		key := "<name>"
		if strings.HasSuffix(t.Kind, "istOf") {
			key = "*"
		}
		ch := node.children[key]
		if ch == nil || ch.opt != nil {
			ch = &optNode{children: map[string]*optNode{}}
		} else {
			used[key] = true
		}
		p := append(append([]string{}, path...), key)
		var inner map[string]bool
		c.Elem, inner = attach(t.Elem, ch, p, orphans)
		noteOrphans(ch, p, inner, orphans)
	case "nullOr", "passwdEntry":
		c.Elem, used = attach(t.Elem, node, path, orphans)
	case "either":
		var l, r map[string]bool
		c.Left, l = attach(t.Left, node, path, orphans)
		c.Right, r = attach(t.Right, node, path, orphans)
		for k := range r {
			l[k] = true
		}
		used = l
	}
	return &c, used
}

// noteOrphans records the names below an option that no submodule of its
// type took.
func noteOrphans(n *optNode, path []string, used map[string]bool, orphans *[]string) {
	for k := range n.children {
		if !used[k] {
			*orphans = append(*orphans, strings.Join(append(append([]string{}, path...), k), "."))
		}
	}
}
