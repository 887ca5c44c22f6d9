// Package stcstandin is a STAND-IN for NixOS's switch-to-configuration-ng
// (named as such): the activation program the VM suite's systems run as
// <toplevel>/bin/switch-to-configuration, since nixpkgs cannot be built
// here and no copy of its code may be. It is ours, written from a reading
// of upstream, and holds the behaviour the agent depends on: which units
// are stopped, restarted, reloaded, started or left alone, the lock, the
// pre-switch check, the boot loader, the exit statuses, reset-failed and
// starting every active target after the activation, waiting for those
// jobs. It talks to the guest's real systemd over D-Bus, as upstream does.
//
// Each rule cites upstream's pkgs/by-name/sw/switch-to-configuration-ng/
// src/main.rs at NixOS/nixpkgs 0145c6da2896513d94440e7fb41c11487aa3de16
// (read with the code search tools) as "main.rs:LINE". What it leaves out
// is named where upstream does it: fstab mounts and swaps (every stand-in
// system has the one root file system), user units (no user logs in to the
// guest), activation-requested restarts (deprecated upstream, unused
// here), nspawn containers, dry-activate.
package stcstandin

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// UnitInfo is a unit file as switch-to-configuration reads it: section to
// key to every value given, in order (main.rs:71, type UnitInfo).
type UnitInfo map[string]map[string][]string

// parseINI adds one unit file (or drop-in) to data (main.rs:344
// parse_systemd_ini): [Install] is skipped; a key's values accumulate over
// files; an empty value clears what came before (ExecStart=).
func parseINI(data UnitInfo, r io.Reader) error {
	section := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	// Values of one file are collected first, then merged: a key's empty
	// value clears what earlier files gave (main.rs:385-404).
	file := map[string]map[string][]string{}
	var order []string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
			continue
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if _, ok := file[section]; !ok {
				file[section] = map[string][]string{}
				order = append(order, section)
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		file[section][k] = append(file[section][k], v)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for _, s := range order {
		if s == "Install" {
			continue
		}
		if data[s] == nil {
			data[s] = map[string][]string{}
		}
		for k, vals := range file[s] {
			var kept []string
			clear := false
			for _, v := range vals {
				if v == "" {
					kept, clear = nil, true
					continue
				}
				kept = append(kept, v)
			}
			if existing, ok := data[s][k]; ok && !clear {
				data[s][k] = append(existing, kept...)
			} else {
				data[s][k] = kept
			}
		}
	}
	return nil
}

// dropIns is the unit's drop-ins, <unit>.d/*.conf (main.rs:416
// unit_dropin_glob), in name order.
func dropIns(unitPath string) []string {
	m, _ := filepath.Glob(unitPath + ".d/*.conf")
	sort.Strings(m)
	return m
}

// ParseUnit reads a unit file with its drop-ins, and for a template
// instance the instance's own drop-ins too (main.rs:426 parse_unit).
func ParseUnit(unitFile, baseUnitFile string) (UnitInfo, error) {
	data := UnitInfo{}
	files := append([]string{baseUnitFile}, dropIns(baseUnitFile)...)
	if unitFile != baseUnitFile {
		files = append(files, dropIns(unitFile)...)
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		err = parseINI(data, fh)
		fh.Close()
		if err != nil {
			return nil, err
		}
	}
	return data, nil
}

// Bool is a boolean of the unit: its last value is 1, yes, true or on; def
// when it is not set (main.rs:467 parse_systemd_bool).
func (u UnitInfo) Bool(section, key string, def bool) bool {
	vals, ok := u[section][key]
	if !ok || len(vals) == 0 {
		return def
	}
	switch vals[len(vals)-1] {
	case "1", "yes", "true", "on":
		return true
	}
	return false
}

// Comparison is how a unit changed (main.rs:495 UnitComparison).
type Comparison int

const (
	Equal Comparison = iota
	NeedsRestart
	NeedsReload
)

// unitSectionIgnores are [Unit] keys whose change alone restarts nothing
// (main.rs:503-517).
var unitSectionIgnores = map[string]bool{
	"X-Reload-Triggers": true, "Description": true, "Documentation": true, "OnFailure": true, "OnSuccess": true,
	"OnFailureJobMode": true, "IgnoreOnIsolate": true, "StopWhenUnneeded": true, "RefuseManualStart": true,
	"RefuseManualStop": true, "AllowIsolate": true, "CollectMode": true, "SourcePath": true,
}

// Compare tells whether a unit changed so that it must be restarted, only
// reloaded (X-Reload-Triggers in [Unit], a mount's Options, a service's
// ExecReload), or not at all (main.rs:500-669 compare_units).
func Compare(cur, next UnitInfo) Comparison {
	ret := Equal
	newSections := map[string]bool{}
	for s := range next {
		newSections[s] = true
	}
	for s, keys := range cur {
		if !newSections[s] {
			// A removed section (main.rs:528-550): [Unit] of ignored keys only,
			// or [Service] of ExecReload only, change nothing.
			switch {
			case s == "Unit":
				for k := range keys {
					if !unitSectionIgnores[k] {
						return NeedsRestart
					}
				}
			case s == "Service" && len(keys) == 1 && has(keys, "ExecReload"):
			default:
				return NeedsRestart
			}
			continue
		}
		delete(newSections, s)
		newKeys := map[string]bool{}
		for k := range next[s] {
			newKeys[k] = true
		}
		for k, v := range keys {
			delete(newKeys, k)
			nv, ok := next[s][k]
			if !ok {
				// A removed key (main.rs:568-581).
				if s == "Unit" && unitSectionIgnores[k] || s == "Service" && k == "ExecReload" {
					continue
				}
				return NeedsRestart
			}
			if equalValues(v, nv) {
				continue
			}
			// A changed key (main.rs:584-611).
			switch {
			case s == "Unit" && k == "X-Reload-Triggers":
				ret = NeedsReload
			case s == "Unit" && unitSectionIgnores[k]:
			case s == "Service" && k == "ExecReload", s == "Mount" && k == "Options":
				ret = NeedsReload
			default:
				return NeedsRestart
			}
		}
		// Keys new in the section (main.rs:614-633).
		if len(newKeys) > 0 {
			switch {
			case s == "Unit":
				for k := range newKeys {
					switch {
					case k == "X-Reload-Triggers":
						ret = NeedsReload
					case unitSectionIgnores[k]:
					default:
						return NeedsRestart
					}
				}
			case s == "Service" && len(newKeys) == 1 && newKeys["ExecReload"]:
				ret = NeedsReload
			default:
				return NeedsRestart
			}
		}
	}
	// A new section (main.rs:636-665): only a [Unit] of ignored keys, or a
	// [Service] of ExecReload only.
	if len(newSections) > 0 {
		if len(newSections) != 1 {
			return NeedsRestart
		}
		switch {
		case newSections["Unit"]:
			for k := range next["Unit"] {
				if !unitSectionIgnores[k] {
					return NeedsRestart
				}
				if k == "X-Reload-Triggers" {
					ret = NeedsReload
				}
			}
		case newSections["Service"]:
			if len(next["Service"]) == 1 && has(next["Service"], "ExecReload") {
				ret = NeedsReload
			} else {
				return NeedsRestart
			}
		default:
			return NeedsRestart
		}
	}
	return ret
}

func has(m map[string][]string, k string) bool {
	_, ok := m[k]
	return ok
}

func equalValues(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
