package testflake

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// This file renders a Spec as the stand-in flake.nix: one
// nixosConfigurations entry per host, each a builtins-only derivation (see
// the package comment).

var nameRE = regexp.MustCompile(`[^A-Za-z0-9+._-]`)

func (r *Repo) render(spec Spec) (string, error) {
	if len(spec.Hosts) == 0 {
		return "", errors.New("testflake: Spec has no hosts")
	}
	var b strings.Builder
	b.WriteString("# Written by internal/testflake: a stand-in NixOS flake for tests (a fake:\n")
	b.WriteString("# nixpkgs cannot be built offline). Each toplevel is a builtins-only\n")
	if r.Guest != nil {
		b.WriteString("# derivation laid out as NixOS's, for the activation stand-in (internal/stcstandin).\n")
	} else {
		b.WriteString("# derivation whose bin/switch-to-configuration records its calls.\n")
	}
	b.WriteString("{\n")
	var inputs []string
	for _, n := range sortedKeys(spec.Inputs) {
		if !hostRE.MatchString(n) {
			return "", fmt.Errorf("testflake: input %q is not a plain attribute name", n)
		}
		fmt.Fprintf(&b, "  inputs.%s = { url = %s; flake = false; };\n", n, nixString(spec.Inputs[n]))
		inputs = append(inputs, n)
	}
	fmt.Fprintf(&b, "  outputs = { self%s }: {\n", strings.Join(append([]string{""}, inputs...), ", "))
	for _, h := range sortedHosts(spec) {
		s := spec.Hosts[h]
		if !hostRE.MatchString(h) {
			return "", fmt.Errorf("testflake: host %q is not a plain attribute name", h)
		}
		fmt.Fprintf(&b, "    nixosConfigurations.%s.config.system.build.toplevel =\n", h)
		if s.EvalError {
			fmt.Fprintf(&b, "      throw %s;\n", nixString("testflake: "+h+" fails to evaluate on purpose"))
			continue
		}
		if s.EvalSlow > 0 {
			// seq forces EvalSlow thousand hashes before the derivation
			// (about 0.3 s per thousand here), in small lists, so it takes
			// time rather than memory.
			fmt.Fprintf(&b, "      builtins.seq (let l = n: builtins.genList (x: x) n; h = a: _: builtins.hashString \"sha256\" a; in\n")
			fmt.Fprintf(&b, "        builtins.foldl' (a: _: builtins.foldl' h a (l 1000)) \"\" (l %d))\n", s.EvalSlow)
		}
		if r.Guest != nil {
			if s.BuildRelease != "" {
				return "", fmt.Errorf("testflake: host %s: BuildRelease is not supported in guest mode", h)
			}
			expr, err := r.guestToplevel(h, s)
			if err != nil {
				return "", err
			}
			b.WriteString("      (" + strings.TrimSpace(expr) + ");\n")
			continue
		}
		inhibitors, err := json.Marshal(orEmpty(s.Inhibitors))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "      (builtins.derivation {\n")
		for _, kv := range append(r.commonAttrs(h, s), [][2]string{
			{"inhibitors", string(inhibitors)},
			{"recordDir", r.recordDir(h)},
			{"switchExit", strconv.Itoa(s.SwitchExit)},
			{"switchSleep", strconv.Itoa(s.SwitchSleep)},
			{"degrade", bool01[s.Degrade]},
		}...) {
			fmt.Fprintf(&b, "        %s = %s;\n", kv[0], nixString(kv[1]))
		}
		if len(inputs) > 0 {
			// The toplevel uses its inputs, so nix must fetch them.
			fmt.Fprintf(&b, "        inputs = [ %s ];\n", strings.Join(inputs, " "))
		}
		// Only when set, so the rendering of systems without them (the VM
		// test's fixtures) stays as it was.
		if s.Secrets != "" {
			fmt.Fprintf(&b, "        secretsJson = %s;\n", nixString(s.Secrets))
		}
		if len(s.NeedFiles) > 0 {
			fmt.Fprintf(&b, "        needFiles = %s;\n", nixString(strings.Join(s.NeedFiles, " ")))
		}
		if s.BuildRelease != "" {
			fmt.Fprintf(&b, "        buildRelease = %s;\n", nixString(s.BuildRelease))
		}
		b.WriteString("        args = [ ./builder.sh ];\n        switchScript = ./switch.sh;\n      });\n")
	}
	b.WriteString("  };\n}\n")
	return b.String(), nil
}

var bool01 = map[bool]string{false: "0", true: "1"}

// commonAttrs are the derivation attributes both kinds of toplevel have.
func (r *Repo) commonAttrs(host string, s System) [][2]string {
	return [][2]string{
		{"name", "nixos-system-" + host + "-" + nameRE.ReplaceAllString(s.Version, "_")},
		{"system", r.NixSystem},
		{"builder", "/bin/sh"},
		{"version", s.Version},
		{"kernel", s.Kernel},
		{"initrd", s.Initrd},
		{"kernelParams", s.KernelParams},
		{"buildFail", bool01[s.BuildFail]},
		{"buildSleep", strconv.Itoa(s.BuildSleep)},
	}
}

var hostRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)

func sortedHosts(s Spec) []string {
	var hs []string
	for h := range s.Hosts {
		hs = append(hs, h)
	}
	sort.Strings(hs)
	return hs
}

// nixString quotes s as a Nix string literal.
func nixString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
