package nixcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A STAND-IN (named as such: nixpkgs cannot be had here) for how NixOS turns
// systemd.services and systemd.timers into unit files, so that the units our
// modules define can run under a real systemd (the VM suite). It renders
// what nixpkgs' nixos/lib/systemd-lib.nix renders, at NixOS/nixpkgs
// 013635633ffe11f70df1d639f563f21c42c1f778 (its attributes cited below); it does
// no more than our modules use: services without script= (and the other
// *Start/*Stop scripts), and timers. Sockets, paths, mounts and the rest are
// left out.

// FakeStoreRE matches the store paths of testdata/nixos.nix's stand-in
// packages (FakeStorePath).
var FakeStoreRE = regexp.MustCompile(`/nix/store/0{32}-[A-Za-z0-9+._?=-]+`)

// FakeStorePath is the store path testdata/nixos.nix's stand-in packages
// have (fakePkg): /nix/store/<32 zeros>-<name>.
func FakeStorePath(name string) string {
	return "/nix/store/00000000000000000000000000000000-" + name
}

// Unit is one unit as NixOS installs it in /etc/systemd/system.
type Unit struct {
	// Name is the unit's name (nix-gitops-apply.service).
	Name string
	// Text is the unit file, or the drop-in's text (Strategy).
	Text string
	// Strategy is overrideStrategy: "asDropin" installs Text as
	// <Name>.d/overrides.conf; "asDropinIfExists" does so only when the
	// system has the unit already (systemd.packages, upstream), and
	// installs it as <Name> otherwise (systemd-lib.nix generateUnits).
	Strategy string
	// WantedBy are the units whose .wants folder links it (generateUnits).
	WantedBy []string
}

// Systemd is what a machine's modules give systemd.
type Systemd struct {
	Units []Unit
	// Packages are the build scripts (runCommand) of systemd.packages: each
	// writes units to $out/lib/systemd/system, which join the system's.
	Packages []string
	// Etc is environment.etc: file name to text.
	Etc map[string]string
	// FailedAssertions are the machine's failed assertions' messages.
	FailedAssertions []string
}

// unitEval is one unit's options, as the evaluation returns them.
type unitEval struct {
	Description      string              `json:"description"`
	Deps             map[string][]string `json:"deps"`
	UnitConfig       map[string]any      `json:"unitConfig"`
	ServiceConfig    map[string]any      `json:"serviceConfig"`
	TimerConfig      map[string]any      `json:"timerConfig"`
	Environment      map[string]*string  `json:"environment"`
	Path             []string            `json:"path"`
	OverrideStrategy string              `json:"overrideStrategy"`
	RestartIfChanged bool                `json:"restartIfChanged"`
	StopIfChanged    bool                `json:"stopIfChanged"`
	ReloadIfChanged  bool                `json:"reloadIfChanged"`
	Script           string              `json:"script"`
	Enable           bool                `json:"enable"`
	WantedBy         []string            `json:"wantedBy"`
}

type systemdEval struct {
	Services          map[string]unitEval `json:"services"`
	Timers            map[string]unitEval `json:"timers"`
	Packages          []string            `json:"packages"`
	GlobalEnvironment map[string]*string  `json:"globalEnvironment"`
	SystemdPackage    string              `json:"systemdPackage"`
	Etc               map[string]*string  `json:"etc"`
	FailedAssertions  []string            `json:"failedAssertions"`
}

// systemdBody reads what the stand-in renders; options the option data
// may not declare default as NixOS's do.
const systemdBody = `let
	  cfg = r.eval.config;
	  unit = _: s: {
	    description = s.description or "";
	    deps = lib.genAttrs [ "requires" "wants" "upholds" "after" "before" "bindsTo" "partOf" "conflicts" "requisite" "documentation" "onFailure" "onSuccess" ] (k: s.${k} or [ ]);
	    unitConfig = s.unitConfig or { };
	    serviceConfig = s.serviceConfig or { };
	    timerConfig = s.timerConfig or { };
	    environment = s.environment or { };
	    path = s.path or [ ];
	    overrideStrategy = s.overrideStrategy or "asDropinIfExists";
	    restartIfChanged = s.restartIfChanged or true;
	    stopIfChanged = s.stopIfChanged or true;
	    reloadIfChanged = s.reloadIfChanged or false;
	    script = s.script or "";
	    enable = s.enable or true;
	    wantedBy = s.wantedBy or [ ];
	  };
	in {
	  services = builtins.mapAttrs unit cfg.systemd.services;
	  timers = builtins.mapAttrs unit cfg.systemd.timers;
	  packages = map (p: p.script or "") cfg.systemd.packages;
	  globalEnvironment = cfg.systemd.globalEnvironment or { };
	  systemdPackage = cfg.systemd.package;
	  etc = builtins.mapAttrs (_: e: e.text or null) (lib.filterAttrs (_: e: e.enable or true) cfg.environment.etc);
	  inherit (r) failedAssertions;
	}`

// EvalSystemd evaluates modules (a Nix list) as one machine (MachineExpr)
// and renders the services and timers they define as NixOS would.
func EvalSystemd(ctx context.Context, repo, modules string) (*Systemd, error) {
	var e systemdEval
	if err := EvalMachine(ctx, repo, modules, systemdBody, &e); err != nil {
		return nil, err
	}
	s := &Systemd{Packages: e.Packages, Etc: map[string]string{}, FailedAssertions: e.FailedAssertions}
	for n, t := range e.Etc {
		if t != nil {
			s.Etc[n] = *t
		}
	}
	for _, n := range sortedKeys(e.Services) {
		u, err := renderService(n+".service", e.Services[n], e.GlobalEnvironment, e.SystemdPackage)
		if err != nil {
			return nil, err
		}
		if u != nil {
			s.Units = append(s.Units, *u)
		}
	}
	for _, n := range sortedKeys(e.Timers) {
		d := e.Timers[n]
		if !d.Enable {
			continue
		}
		text, err := unitText(n+".timer", d, "[Timer]\n", d.TimerConfig, "\n")
		if err != nil {
			return nil, err
		}
		s.Units = append(s.Units, Unit{Name: n + ".timer", Text: text, Strategy: d.OverrideStrategy, WantedBy: d.WantedBy})
	}
	return s, nil
}

// renderService is serviceToUnit over a stage-2 service
// (stage2ServiceConfig: the default path, appended after the unit's).
func renderService(name string, d unitEval, global map[string]*string, systemd string) (*Unit, error) {
	if !d.Enable {
		// makeUnit links a disabled unit to /dev/null; none of ours is.
		return nil, fmt.Errorf("%s: enable = false is not rendered by the stand-in", name)
	}
	if d.Script != "" {
		return nil, fmt.Errorf("%s: script= (makeJobScript) is not rendered by the stand-in", name)
	}
	env := map[string]*string{}
	for k, v := range global {
		env[k] = v
	}
	for k, v := range d.Environment {
		env[k] = v
	}
	// serviceConfig: PATH from path, makeBinPath then the sbin folders; the
	// stage-2 default path (coreutils, findutils, gnugrep, gnused, systemd)
	// comes after the unit's (mkAfter).
	path := append(append([]string{}, d.Path...), FakeStorePath("coreutils"), FakeStorePath("findutils"),
		FakeStorePath("gnugrep"), FakeStorePath("gnused"), systemd)
	var bin, sbin []string
	for _, p := range path {
		bin, sbin = append(bin, p+"/bin"), append(sbin, p+"/sbin")
	}
	p := strings.Join(bin, ":") + ":" + strings.Join(sbin, ":")
	env["PATH"] = &p

	var b strings.Builder
	b.WriteString("[Service]\n")
	for _, k := range sortedKeys(env) {
		if env[k] == nil {
			continue
		}
		// serviceToUnit: Environment=${toJSON "${n}=${v}"}, names sorted.
		var j bytes.Buffer
		enc := json.NewEncoder(&j)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(k + "=" + *env[k]); err != nil {
			return nil, err
		}
		b.WriteString("Environment=" + strings.TrimSuffix(j.String(), "\n") + "\n")
	}
	// serviceToUnit: the keys switch-to-configuration reads.
	switch {
	case d.ReloadIfChanged:
		b.WriteString("X-ReloadIfChanged=true\n")
	case !d.RestartIfChanged:
		b.WriteString("X-RestartIfChanged=false\n")
	}
	if !d.StopIfChanged {
		b.WriteString("X-StopIfChanged=false\n")
	}
	text, err := unitText(name, d, b.String(), d.ServiceConfig, "")
	if err != nil {
		return nil, err
	}
	return &Unit{Name: name, Text: text, Strategy: d.OverrideStrategy, WantedBy: d.WantedBy}, nil
}

// unitText is commonUnitText around one section: [Unit] from unitConfig and
// the options it is derived from (systemd-lib.nix unitConfig),
// then head, the section's keys, and tail; [Install] when wantedBy is set.
func unitText(name string, d unitEval, head string, section map[string]any, tail string) (string, error) {
	unit := map[string]any{}
	for k, v := range d.UnitConfig {
		unit[k] = v
	}
	derived := map[string]string{"requires": "Requires", "wants": "Wants", "upholds": "Upholds", "after": "After", "before": "Before",
		"bindsTo": "BindsTo", "partOf": "PartOf", "conflicts": "Conflicts", "requisite": "Requisite",
		"documentation": "Documentation", "onFailure": "OnFailure", "onSuccess": "OnSuccess"}
	for opt, key := range derived {
		if l := d.Deps[opt]; len(l) > 0 {
			if err := mergeUnitOption(unit, key, strings.Join(l, " ")); err != nil {
				return "", fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	if d.Description != "" {
		if err := mergeUnitOption(unit, "Description", d.Description); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
	}
	text := "[Unit]\n" + attrsToSection(unit) + "\n" + head + attrsToSection(section) + tail
	if len(d.WantedBy) > 0 {
		text += "\n[Install]\nWantedBy=" + strings.Join(d.WantedBy, " ") + "\n"
	}
	return text, nil
}

// mergeUnitOption adds a derived key to unitConfig as the option type
// unitOption merges definitions (systemd-unit-options.nix: list values
// concatenate, others must be equal).
func mergeUnitOption(unit map[string]any, key, v string) error {
	old, ok := unit[key]
	switch {
	case !ok:
		unit[key] = v
	case isList(old):
		unit[key] = append(old.([]any), v)
	case old == v:
	default:
		return fmt.Errorf("the option %s has conflicting definitions: %v and %q", key, old, v)
	}
	return nil
}

func isList(v any) bool { _, ok := v.([]any); return ok }

// attrsToSection: one "name=value" line per value (a list gives
// one line per element), in attribute order (names sorted).
func attrsToSection(as map[string]any) string {
	var b strings.Builder
	for _, k := range sortedKeys(as) {
		vs, ok := as[k].([]any)
		if !ok {
			vs = []any{as[k]}
		}
		for _, v := range vs {
			b.WriteString(k + "=" + toOption(v) + "\n")
		}
	}
	return b.String()
}

// toOption: booleans as true/false, anything else as toString
// makes it (null is empty).
func toOption(v any) string {
	switch x := v.(type) {
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case string:
		return x
	default:
		return fmt.Sprint(x)
	}
}

// sortedKeys are a map's keys in the order of a Nix attribute set's names.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// Tree is what NixOS installs in /etc/systemd/system for a machine's units
// (systemd-lib.nix generateUnits): Files by path in that folder, and Links
// (the .wants links) by path, each to its target.
type Tree struct {
	Files map[string]string
	Links map[string]string
}

// Tree lays out the units as generateUnits does: the units each package's
// script writes; then each unit of ours, as <name>.d/overrides.conf for
// "asDropin", and for "asDropinIfExists" when a package has the unit,
// otherwise as <name>; then the wantedBy links. The scripts run with sh and
// $out in a temporary folder, after replacing each store path of stores (a
// fake store path, to a real folder holding what the package would); in
// what they write the real folder is replaced by the fake path again.
func (s *Systemd) Tree(ctx context.Context, stores map[string]string) (Tree, error) {
	t := Tree{Files: map[string]string{}, Links: map[string]string{}}
	for i, script := range s.Packages {
		files, err := runPackage(ctx, script, stores)
		if err != nil {
			return t, fmt.Errorf("systemd.packages[%d]: %w", i, err)
		}
		for n, text := range files {
			t.Files[n] = text
		}
	}
	for _, u := range s.Units {
		_, exists := t.Files[u.Name]
		switch {
		case u.Strategy == "asDropin", u.Strategy == "asDropinIfExists" && exists:
			t.Files[u.Name+".d/overrides.conf"] = u.Text
		case u.Strategy == "asDropinIfExists":
			t.Files[u.Name] = u.Text
		default:
			return t, fmt.Errorf("%s: overrideStrategy %q is not rendered by the stand-in", u.Name, u.Strategy)
		}
		for _, w := range u.WantedBy {
			t.Links[w+".wants/"+u.Name] = "../" + u.Name
		}
	}
	return t, nil
}

// runPackage runs a package's build script and returns the units it writes
// to $out/lib/systemd/system, by name.
func runPackage(ctx context.Context, script string, stores map[string]string) (map[string]string, error) {
	tmp, err := os.MkdirTemp("", "nixcheck-package-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for fake, real := range stores {
		script = strings.ReplaceAll(script, fake, real)
	}
	out := filepath.Join(tmp, "out")
	cmd := exec.CommandContext(ctx, "sh", "-e", "-c", script)
	cmd.Env = append(os.Environ(), "out="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("its build script fails: %w\n%s", err, b)
	}
	dir := filepath.Join(out, "lib/systemd/system")
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	files := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		text := string(b)
		for fake, real := range stores {
			text = strings.ReplaceAll(text, real, fake)
		}
		files[e.Name()] = text
	}
	return files, nil
}
