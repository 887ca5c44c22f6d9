package stcstandin

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ActiveUnit is a unit systemd has loaded and not inactive, as
// get_active_units keeps them (main.rs:286-342: no "following" unit,
// state not inactive).
type ActiveUnit struct {
	Name, State, SubState, FragmentPath string
}

// Plan is what the switch does to units: the sets of main.rs:1881-1885 and
// Filter, the units started but not listed (active targets).
type Plan struct {
	Stop, Start, Restart, Reload, Skip, Filter map[string]bool
}

// NewPlan is an empty plan, with the start, restart and reload lists an
// interrupted switch left behind (main.rs:1883-1885 map_from_list_file).
func NewPlan(lists Lists) *Plan {
	return &Plan{
		Stop: map[string]bool{}, Skip: map[string]bool{}, Filter: map[string]bool{},
		Start: lists.read("start-list"), Restart: lists.read("restart-list"), Reload: lists.read("reload-list"),
	}
}

// Lists are the files that record what an interrupted switch still has to
// start, restart and reload (main.rs:64-70, record_unit :844, unrecord_unit
// :853), in /run/nixos.
type Lists struct{ Dir string }

func (l Lists) path(name string) string { return filepath.Join(l.Dir, name) }

func (l Lists) read(name string) map[string]bool {
	m := map[string]bool{}
	b, _ := os.ReadFile(l.path(name))
	for _, line := range strings.Split(string(b), "\n") {
		if line != "" {
			m[line] = true
		}
	}
	return m
}

func (l Lists) record(name, unit string) {
	f, err := os.OpenFile(l.path(name), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.WriteString(unit + "\n")
}

func (l Lists) unrecord(name, unit string) {
	b, err := os.ReadFile(l.path(name))
	if err != nil {
		return
	}
	var keep []string
	for _, line := range strings.Split(string(b), "\n") {
		if line != "" && line != unit {
			keep = append(keep, line)
		}
	}
	out := ""
	if len(keep) > 0 {
		out = strings.Join(keep, "\n") + "\n"
	}
	_ = os.WriteFile(l.path(name), []byte(out), 0o644)
}

func (l Lists) remove(name string) { _ = os.Remove(l.path(name)) }

var (
	// main.rs TEMPLATE_UNIT_RE and UNIT_NAME_RE.
	templateUnitRE = regexp.MustCompile(`^(.*)@[^\.]*\.(.*)$`)
	unitNameRE     = regexp.MustCompile(`^(.*)\.[[:lower:]]*$`)
)

// exists is Path::exists: the path, symlinks followed, is there.
func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// gone is a unit file that is missing or masked (a link to /dev/null)
// (main.rs:1096-1126 UnitFileState, unit_file_state).
func gone(p string) bool {
	t, err := filepath.EvalSymlinks(p)
	return err != nil || t == "/dev/null"
}

// Collect compares every active unit loaded from /etc/systemd/system
// (oldDir) with the new system's (newDir) and fills the plan
// (main.rs:1139-1318 collect_unit_changes):
//   - a unit the new system lacks is stopped, unless its current unit says
//     X-StopOnRemoval=false in [Unit] (:1233-1240);
//   - an active target is started again after the activation, which starts
//     what it newly wants; not suspend/hibernate/hybrid-sleep, nor one with
//     RefuseManualStart or X-OnlyManualStart; with X-StopOnReconfiguration
//     it is stopped first (:1241-1289);
//   - any other changed unit goes through modified (:1290-1314).
func (p *Plan) Collect(toplevel, oldDir, newDir string, active map[string]ActiveUnit, lists Lists) error {
	for unit, st := range active {
		// Only units NixOS manages (:1163-1173).
		if !strings.HasPrefix(st.FragmentPath, oldDir) {
			continue
		}
		curFile, newFile := filepath.Join(oldDir, unit), filepath.Join(newDir, unit)
		baseUnit, curBase, newBase := unit, curFile, newFile
		if m := templateUnitRE.FindStringSubmatch(unit); m != nil && !exists(curFile) && !exists(newFile) {
			baseUnit = m[1] + "@." + m[2]
			curBase, newBase = filepath.Join(oldDir, baseUnit), filepath.Join(newDir, baseUnit)
		}
		baseName := baseUnit
		if m := unitNameRE.FindStringSubmatch(baseUnit); m != nil {
			baseName = m[1]
		}
		if !exists(curBase) || (st.State != "active" && st.State != "activating") {
			continue
		}
		switch {
		case gone(newBase):
			cur, err := ParseUnit(curFile, curBase)
			if err != nil {
				return err
			}
			if cur.Bool("Unit", "X-StopOnRemoval", true) {
				p.Stop[unit] = true
			}
		case strings.HasSuffix(unit, ".target"):
			next, err := ParseUnit(newFile, newBase)
			if err != nil {
				return err
			}
			if !(unit == "suspend.target" || unit == "hibernate.target" || unit == "hybrid-sleep.target" ||
				next.Bool("Unit", "RefuseManualStart", false) || next.Bool("Unit", "X-OnlyManualStart", false)) {
				p.Start[unit] = true
				lists.record("start-list", unit)
				p.Filter[unit] = true
			}
			if next.Bool("Unit", "X-StopOnReconfiguration", false) {
				p.Stop[unit] = true
			}
		default:
			cur, err := ParseUnit(curFile, curBase)
			if err != nil {
				return err
			}
			next, err := ParseUnit(newFile, newBase)
			if err != nil {
				return err
			}
			switch Compare(cur, next) {
			case NeedsRestart:
				p.modified(toplevel, unit, baseName, next, active, lists)
			case NeedsReload:
				if !p.Restart[unit] {
					p.Reload[unit] = true
					lists.record("reload-list", unit)
				}
			}
		}
	}
	return nil
}

// cannotBeRestarted: targets every system has and slices (main.rs:940).
func cannotBeRestarted(unit string) bool {
	switch unit {
	case "sysinit.target", "basic.target", "multi-user.target", "graphical.target":
		return true
	}
	return strings.HasSuffix(unit, ".unit") || strings.HasSuffix(unit, ".slice")
}

// modified decides for a changed unit (main.rs:671-842
// handle_modified_unit): X-ReloadIfChanged in [Service] reloads it;
// X-RestartIfChanged=false in [Service], RefuseManualStop or
// X-OnlyManualStart in [Unit] leave it alone ("NOT restarting"); a service
// with X-StopIfChanged (default true) is stopped before the activation and
// started after it, anything else restarted after it. A socket-activated
// service has its sockets stopped and started instead. Mounts restart
// (/ and /nix reload); sockets are left as they are.
func (p *Plan) modified(toplevel, unit, baseName string, next UnitInfo, active map[string]ActiveUnit, lists Lists) {
	switch {
	case cannotBeRestarted(unit):
		return
	case strings.HasSuffix(unit, ".mount"):
		if unit == "-.mount" || unit == "nix.mount" {
			p.Reload[unit] = true
			lists.record("reload-list", unit)
		} else {
			p.Restart[unit] = true
			lists.record("restart-list", unit)
		}
		return
	case strings.HasSuffix(unit, ".socket"):
		return
	}
	switch {
	case next.Bool("Service", "X-ReloadIfChanged", false) && !p.Restart[unit] && !p.Stop[unit]:
		p.Reload[unit] = true
		lists.record("reload-list", unit)
		return
	case !next.Bool("Service", "X-RestartIfChanged", true) || next.Bool("Unit", "RefuseManualStop", false) ||
		next.Bool("Unit", "X-OnlyManualStart", false):
		p.Skip[unit] = true
		return
	case !next.Bool("Service", "X-StopIfChanged", true) || !strings.HasSuffix(unit, ".service"):
		p.Restart[unit] = true
		lists.record("restart-list", unit)
	default:
		// Sockets (main.rs:748-815): Sockets= of [Service], else <name>.socket.
		socketActivated := false
		var sockets []string
		for _, v := range next["Service"]["Sockets"] {
			sockets = append(sockets, strings.Fields(v)...)
		}
		if len(sockets) == 0 {
			sockets = []string{strings.TrimSuffix(baseName, "@") + ".socket"}
		}
		for _, s := range sockets {
			inNew := exists(filepath.Join(toplevel, "etc/systemd/system", s))
			if _, ok := active[s]; ok {
				p.Stop[s] = true
				if inNew {
					p.Start[s] = true
					lists.record("start-list", s)
					socketActivated = true
				}
			} else if inNew {
				socketActivated = true
			}
		}
		if next.Bool("Service", "X-NotSocketActivated", false) {
			socketActivated = false
		}
		if !socketActivated {
			p.Start[unit] = true
			lists.record("start-list", unit)
		}
		p.Stop[unit] = true
	}
	// Not restarted and reloaded both (main.rs:832-835).
	if p.Reload[unit] {
		delete(p.Reload, unit)
		lists.unrecord("reload-list", unit)
	}
}
