package testflake

import (
	"embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// The NixOS-shaped toplevel's scripts (see Guest), files so they read as
// shell.
//
//go:embed guest/*.sh
var guestScripts embed.FS

// Guest makes every toplevel NixOS-shaped, for a guest that runs the
// activation stand-in of switch-to-configuration-ng (the VM suite,
// internal/stcstandin) under real systemd: instead of a recording stand-in
// switch, each toplevel carries what that program and a NixOS boot read (see
// guest/builder.sh): the wrapper switchable-system.nix generates, an
// activation script that links /etc through /etc/static and sets
// /run/current-system, a stage-2 init, the units in etc/systemd/system (the
// agent's own as `nix-gitops units` renders them, targets, the test's
// services), init-interface-version, switch-inhibitors, kernel files and
// boot.json. The derivations stay builtins-only (no nixpkgs).
type Guest struct {
	// STC is the activation stand-in in the guest (internal/stcstandin).
	STC string
	// Agent is the nix-gitops binary in the guest; each system's agent
	// package copies it into the store.
	Agent string
	// Systemd is the prefix holding lib/systemd/systemd and bin/systemctl
	// (the wrapper's SYSTEMD) [/usr].
	Systemd string
}

// GuestFstab is every guest system's /etc/fstab (the image's root file
// system); switch-to-configuration compares it with the running one.
const GuestFstab = "LABEL=root / ext4 defaults 0 1\n"

var unitNameRE = regexp.MustCompile(`^[A-Za-z0-9:_.@-]+\.(service|target|timer|socket|path|mount)$`)

// guestFiles are the scripts a guest flake's folder holds.
func guestFiles() (map[string]string, error) {
	files := map[string]string{}
	for _, n := range []string{"builder", "activate", "init", "wrapper", "install-bootloader", "pre-switch-checks"} {
		b, err := guestScripts.ReadFile("guest/" + n + ".sh")
		if err != nil {
			return nil, err
		}
		files["guest-"+n+".sh"] = string(b)
	}
	return files, nil
}

// guestToplevel is the Nix expression of host's NixOS-shaped toplevel.
func (r *Repo) guestToplevel(host string, s System) (string, error) {
	g := *r.Guest
	if g.Systemd == "" {
		g.Systemd = "/usr"
	}
	if s.AgentVersion == "" {
		s.AgentVersion = "1"
	}
	if s.InitInterface == "" {
		s.InitInterface = "systemd"
	}
	health := s.HealthScript
	if health == "" {
		health = "exit 0"
	}
	inhibitors, err := json.Marshal(orEmpty(s.Inhibitors))
	if err != nil {
		return "", err
	}
	agentConfig, err := json.Marshal(s.AgentConfig)
	if err != nil {
		return "", err
	}
	if s.AgentConfig == nil {
		agentConfig = []byte("{}")
	}
	units := map[string]string{}
	for k, v := range s.Units {
		units[k] = v
	}
	wanted := append([]string{}, s.Wanted...)
	if s.Degrade {
		// A unit that fails when the switch starts it: switch-to-configuration
		// then exits 4 ("the following units failed").
		units["testflake-degraded.service"] = "[Unit]\nDescription=testflake: fails on purpose\n[Service]\nType=oneshot\nExecStart=/bin/false\n"
		wanted = append(wanted, "testflake-degraded.service")
	}
	var unitList []string
	for _, n := range sortedKeys(units) {
		if !unitNameRE.MatchString(n) {
			return "", fmt.Errorf("testflake: %q is not a unit name", n)
		}
		unitList = append(unitList, fmt.Sprintf("%s=${builtins.toFile %s %s}", n, nixString(n), nixString(units[n])))
	}
	for _, w := range wanted {
		if !unitNameRE.MatchString(w) {
			return "", fmt.Errorf("testflake: %q is not a unit name", w)
		}
	}
	files, err := fileList("systemd file", s.SystemdFiles)
	if err != nil {
		return "", err
	}
	etc, err := fileList("etc file", s.Etc)
	if err != nil {
		return "", err
	}
	var links []string
	for _, p := range sortedKeys(s.SystemdLinks) {
		if !pathRE.MatchString(p) || !pathRE.MatchString(s.SystemdLinks[p]) {
			return "", fmt.Errorf("testflake: systemd link %q -> %q is not a plain path", p, s.SystemdLinks[p])
		}
		links = append(links, p+"="+s.SystemdLinks[p])
	}
	extra := `""`
	if s.ActivateExtra != "" {
		extra = fmt.Sprintf("builtins.toFile \"testflake-activate-extra\" %s", nixString(s.ActivateExtra))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "      let\n")
	fmt.Fprintf(&b, "        agent = builtins.derivation {\n          name = %s;\n          system = %s;\n          builder = \"/bin/sh\";\n",
		nixString("nix-gitops-"+nameRE.ReplaceAllString(s.AgentVersion, "_")), nixString(r.NixSystem))
	fmt.Fprintf(&b, "          args = [ \"-c\" %s ];\n        };\n      in\n", nixString("/bin/mkdir -p $out/bin && /bin/cp "+g.Agent+" $out/bin/nix-gitops"))
	fmt.Fprintf(&b, "      builtins.derivation {\n")
	for _, kv := range append(r.commonAttrs(host, s), [][2]string{
		{"initInterface", s.InitInterface},
		{"inhibitors", string(inhibitors)},
		{"agentConfig", string(agentConfig)},
		{"healthScript", "#!/bin/sh\n" + health + "\n"},
		{"stc", g.STC},
		{"systemd", g.Systemd},
		{"wanted", strings.Join(wanted, " ")},
		{"activateSleep", strconv.Itoa(s.ActivateSleep)},
	}...) {
		fmt.Fprintf(&b, "        %s = %s;\n", kv[0], nixString(kv[1]))
	}
	fmt.Fprintf(&b, "        inherit agent;\n")
	fmt.Fprintf(&b, "        units = \"%s\";\n", strings.Join(unitList, " "))
	fmt.Fprintf(&b, "        systemdFiles = \"%s\";\n", strings.Join(files, " "))
	fmt.Fprintf(&b, "        systemdLinks = %s;\n", nixString(strings.Join(links, " ")))
	fmt.Fprintf(&b, "        etcFiles = \"%s\";\n", strings.Join(etc, " "))
	fmt.Fprintf(&b, "        activateExtra = %s;\n", extra)
	// Files whose content is the same in every system are store paths of
	// their own, as in NixOS's etc tree: an unchanged system.conf resolves to
	// the same path, so switch-to-configuration does not re-execute systemd.
	fmt.Fprintf(&b, "        systemConf = builtins.toFile \"system.conf\" \"[Manager]\\n\";\n")
	fmt.Fprintf(&b, "        fstab = builtins.toFile \"fstab\" %s;\n", nixString(GuestFstab))
	fmt.Fprintf(&b, "        reactivationTarget = builtins.toFile \"sysinit-reactivation.target\" %s;\n",
		nixString("[Unit]\nDescription=Reactivate sysinit units (testflake stand-in of the NixOS unit)\n"))
	for _, n := range []string{"activate", "init", "wrapper", "install-bootloader", "pre-switch-checks"} {
		fmt.Fprintf(&b, "        %sScript = ./guest-%s.sh;\n", map[string]string{"activate": "activate", "init": "init", "wrapper": "wrapper",
			"install-bootloader": "bootloader", "pre-switch-checks": "preSwitch"}[n], n)
	}
	fmt.Fprintf(&b, "        args = [ ./guest-builder.sh ];\n      }\n")
	return b.String(), nil
}

// WriteTemplateSystem writes, into dir, a plain Nix expression (default.nix,
// attribute toplevel) of host's system s as this Repo renders it: the
// template's own system, generation 0, built into the VM image by
// hack/vm-image.sh --template-system.
func (r *Repo) WriteTemplateSystem(dir, host string, s System) error {
	if r.Guest == nil {
		return fmt.Errorf("testflake: WriteTemplateSystem needs Options.Guest")
	}
	expr, err := r.guestToplevel(host, s)
	if err != nil {
		return err
	}
	files, err := guestFiles()
	if err != nil {
		return err
	}
	files["default.nix"] = "# Written by internal/testflake: the stand-in template's own system (a fake).\n{\n  toplevel =\n" + expr + ";\n}\n"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for n, text := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(text), 0o644); err != nil {
			return fmt.Errorf("cannot write %s: %w", n, err)
		}
	}
	return nil
}

// pathRE is a relative path without spaces, quotes or "..": what the
// builder's word lists carry.
var pathRE = regexp.MustCompile(`^[A-Za-z0-9:_.@-]+(/[A-Za-z0-9:_.@-]+)*$`)

// fileList is files as "path=${builtins.toFile ...}" words for the builder.
func fileList(what string, files map[string]string) ([]string, error) {
	var l []string
	for _, p := range sortedKeys(files) {
		if !pathRE.MatchString(p) || strings.Contains(p, "..") {
			return nil, fmt.Errorf("testflake: %s %q is not a plain relative path", what, p)
		}
		l = append(l, fmt.Sprintf("%s=${builtins.toFile %s %s}", p, nixString(nameRE.ReplaceAllString(p, "_")), nixString(files[p])))
	}
	return l, nil
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
