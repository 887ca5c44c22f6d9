package proxmoxsim

import (
	"crypto/sha1"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

func init() {
	handle("GET", `/nodes/([^/]+)/qemu/(\d+)/config`, (*Sim).getConfig)
	handle("PUT", `/nodes/([^/]+)/qemu/(\d+)/config`, func(s *Sim, m []string, f url.Values) (any, *apiError) {
		_, err := s.updateConfig(m[2], f)
		return nil, err
	})
	// The asynchronous variant answers a task that has already done the work.
	handle("POST", `/nodes/([^/]+)/qemu/(\d+)/config`, func(s *Sim, m []string, f url.Values) (any, *apiError) {
		if _, err := s.updateConfig(m[2], f); err != nil {
			return nil, err
		}
		return s.startTask("qmconfig", m[2], 0, func() error { return nil })
	})
	handle("PUT", `/nodes/([^/]+)/qemu/(\d+)/resize`, (*Sim).resize)
	handle("PUT", `/nodes/([^/]+)/qemu/(\d+)/cloudinit`, func(s *Sim, m []string, _ url.Values) (any, *apiError) {
		v, aerr := s.getVM(m[2])
		if aerr != nil {
			return nil, aerr
		}
		if aerr := v.checkLock(); aerr != nil {
			return nil, aerr
		}
		// PVE::API2::Qemu cloudinit_update regenerates the drive now, which
		// reads the cicustom snippets as a start does.
		if _, err := s.cloudInit(v); err != nil {
			return nil, die("%v", err)
		}
		v.writes++
		return nil, nil
	})
	handle("DELETE", `/nodes/([^/]+)/qemu/(\d+)/?`, (*Sim).destroy)
	handle("GET", `/nodes/([^/]+)/qemu`, func(s *Sim, _ []string, _ url.Values) (any, *apiError) {
		var out []map[string]any
		for _, v := range s.sortedVMs() {
			out = append(out, map[string]any{"vmid": v.id, "name": v.conf["name"], "status": v.status(), "template": jsonValue("template", or(v.conf["template"], "0"))})
		}
		return out, nil
	})
}

func (v *vm) status() string {
	if v.running {
		return "running"
	}
	return "stopped"
}

// getConfig answers the config with pending changes applied, as
// GET .../config does by default ('current' unset), plus its digest.
func (s *Sim) getConfig(m []string, _ url.Values) (any, *apiError) {
	v, aerr := s.getVM(m[2])
	if aerr != nil {
		return nil, aerr
	}
	out := map[string]any{"digest": v.digest()}
	for k, val := range v.conf {
		out[k] = jsonValue(k, val)
	}
	if v.lock != "" {
		out["lock"] = v.lock
	}
	return out, nil
}

func (v *vm) digest() string {
	keys := make([]string, 0, len(v.conf))
	for k := range v.conf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha1.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s: %s\n", k, v.conf[k])
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// apiOnly are update_vm parameters that are not options.
var apiOnly = map[string]bool{"node": true, "vmid": true, "delete": true, "digest": true, "skiplock": true, "revert": true, "force": true, "background_delay": true}

var newVolumeRE = regexp.MustCompile(`^(?:([^:\s]+):)?(\d+(?:\.\d+)?)$`)

// updateConfig follows qemu-server PVE::API2::Qemu update_vm_api:
//   - a locked VM is refused (check_lock);
//   - every option is checked against the schema (schema.go);
//   - 'delete' removes options; a removed disk becomes unusedN, a removed
//     cloud-init drive is freed;
//   - a drive whose volume is "<storage>:<GiB>" is allocated as a new, empty
//     volume (create_disks); "<storage>:cloudinit" allocates the VM's
//     cloud-init drive; an existing volume keeps its real size whatever the
//     request says (create_disks reads volume_size_info);
//   - a NIC without a MAC gets one; values are stored re-printed.
func (s *Sim) updateConfig(id string, f url.Values) (*vm, *apiError) {
	v, aerr := s.getVM(id)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := v.checkLock(); aerr != nil {
		return nil, aerr
	}
	bad := map[string]string{}
	set := map[string]string{}
	for k, vals := range f {
		if apiOnly[k] {
			continue
		}
		val, err := checkValue(k, vals[len(vals)-1])
		if err != nil {
			bad[k] = err.Error()
			continue
		}
		set[k] = val
	}
	var dels []string
	for _, d := range strings.FieldsFunc(f.Get("delete"), func(r rune) bool { return r == ',' || r == ';' || r == ' ' }) {
		if _, ok := optionType(d); !ok {
			bad["delete"] = fmt.Sprintf("invalid format - '%s' is not a valid option", d)
			continue
		}
		if _, both := set[d]; both {
			bad["delete"] = fmt.Sprintf("cannot set and delete '%s' at the same time", d)
			continue
		}
		dels = append(dels, d)
	}
	if len(bad) > 0 {
		return nil, paramError(bad)
	}

	for _, d := range dels {
		val, ok := v.conf[d]
		if !ok {
			continue // "cannot delete '<opt>' - not set in current configuration!" is a warning
		}
		delete(v.conf, d)
		if isDrive(d) {
			p, _ := parseProps(d, val)
			switch {
			case isCloudInit(p.def):
				delete(s.volumes, p.def)
			case s.volumes[p.def] != nil:
				v.conf[s.freeUnused(v)] = p.def
			}
		}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		val := set[k]
		switch {
		case isDrive(k):
			stored, aerr := s.setDrive(v, k, val)
			if aerr != nil {
				return nil, aerr
			}
			val = stored
		case isNet(k):
			p, err := parseProps(k, val)
			if err != nil {
				return nil, paramError(map[string]string{k: err.Error()})
			}
			if p.keys["model"] == "" {
				return nil, paramError(map[string]string{k: "missing property - 'model'"})
			}
			if p.keys["macaddr"] == "" {
				p.keys["macaddr"] = randomMAC()
			}
			val = p.String(k)
		case defaultKey(k) != "":
			p, err := parseProps(k, val)
			if err != nil {
				return nil, paramError(map[string]string{k: err.Error()})
			}
			val = p.String(k)
		}
		v.conf[k] = val
	}
	v.writes++
	return v, nil
}

// setDrive stores one drive option, allocating its volume when asked to.
func (s *Sim) setDrive(v *vm, opt, val string) (string, *apiError) {
	p, err := parseProps(opt, val)
	if err != nil {
		return "", paramError(map[string]string{opt: err.Error()})
	}
	file := p.def
	if file == "" {
		return "", paramError(map[string]string{opt: "missing property - 'file'"})
	}
	storage, rest, _ := strings.Cut(file, ":")
	switch {
	case file == "none" || p.keys["media"] == "cdrom" && !strings.HasSuffix(file, ":cloudinit") && !isCloudInit(file):
		// an empty or ISO CD-ROM drive
	case rest == "cloudinit":
		if storage != imageStorage {
			return "", die("storage '%s' does not exist", storage)
		}
		name := fmt.Sprintf("%s:vm-%d-cloudinit", storage, v.id)
		if s.volumes[name] != nil {
			return "", die("unable to create cloudinit disk: volume '%s' already exists", name)
		}
		s.volumes[name] = &volume{id: name, size: 4 << 20, vmid: v.id}
		p.def = name
		p.keys["media"] = "cdrom"
	case newVolumeRE.MatchString(file):
		mm := newVolumeRE.FindStringSubmatch(file)
		if mm[1] != imageStorage {
			return "", die("storage '%s' does not exist", mm[1])
		}
		gib, _ := strconv.ParseFloat(mm[2], 64)
		name := s.nextDiskName(mm[1], v.id)
		vol := &volume{id: name, size: int64(gib * (1 << 30)), vmid: v.id}
		s.volumes[name] = vol
		p.def = name
		p.keys["size"] = strconv.FormatInt(vol.size, 10)
		s.opts.Logf("proxmoxsim: VM %d: %s is a new empty disk %s (%s)", v.id, opt, name, formatSize(vol.size))
	default:
		vol := s.volumes[file]
		if vol == nil {
			return "", die("volume '%s' does not exist", file)
		}
		if !isCloudInit(file) {
			p.keys["size"] = strconv.FormatInt(vol.size, 10)
		}
	}
	if old, ok := v.conf[opt]; ok {
		op, _ := parseProps(opt, old)
		if op.def != p.def && s.volumes[op.def] != nil && !isCloudInit(op.def) {
			v.conf[s.freeUnused(v)] = op.def
		}
	}
	return p.String(opt), nil
}

func (s *Sim) freeUnused(v *vm) string {
	for n := 0; ; n++ {
		k := "unused" + strconv.Itoa(n)
		if _, ok := v.conf[k]; !ok {
			return k
		}
	}
}

// resize follows PVE::API2::Qemu resize_vm: "+N" grows by N, "N" is the
// new absolute size, and a smaller size is refused ("shrinking disks is not
// supported"); a CD-ROM cannot be resized. PVE 8 runs it as a task.
func (s *Sim) resize(m []string, f url.Values) (any, *apiError) {
	v, aerr := s.getVM(m[2])
	if aerr != nil {
		return nil, aerr
	}
	if aerr := v.checkLock(); aerr != nil {
		return nil, aerr
	}
	disk := f.Get("disk")
	val, ok := v.conf[disk]
	if !ok || !isDrive(disk) {
		return nil, die("disk '%s' does not exist", disk)
	}
	p, _ := parseProps(disk, val)
	if p.keys["media"] == "cdrom" {
		return nil, die("you can't resize a cdrom")
	}
	vol := s.volumes[p.def]
	if vol == nil {
		return nil, die("disk '%s' has no associated volume", disk)
	}
	sizeStr := f.Get("size")
	grow := strings.HasPrefix(sizeStr, "+")
	n, err := parseSize(strings.TrimPrefix(sizeStr, "+"))
	if err != nil {
		return nil, paramError(map[string]string{"size": "value does not match the regex pattern"})
	}
	if grow {
		n += vol.size
	}
	if n < vol.size {
		return nil, die("shrinking disks is not supported")
	}
	v.writes++
	return s.startTask("resize", m[2], s.opts.TaskTime, func() error {
		vol.size = n
		if cur, ok := v.conf[disk]; ok {
			cp, _ := parseProps(disk, cur)
			cp.keys["size"] = strconv.FormatInt(n, 10)
			v.conf[disk] = cp.String(disk)
		}
		return nil
	})
}

// destroy follows PVE::API2::Qemu destroy_vm: a running VM is refused
// ("VM <id> is running - destroy failed"), a locked one too; the worker
// frees every volume the VM owns.
func (s *Sim) destroy(m []string, _ url.Values) (any, *apiError) {
	v, aerr := s.getVM(m[2])
	if aerr != nil {
		return nil, aerr
	}
	if aerr := v.checkLock(); aerr != nil {
		return nil, aerr
	}
	if v.running {
		return nil, die("VM %d is running - destroy failed", v.id)
	}
	if v.isTemplate() {
		s.opts.Logf("proxmoxsim: destroying template %d", v.id)
	}
	v.lock = "destroyed"
	v.writes++
	return s.startTask("qmdestroy", m[2], s.opts.TaskTime, func() error {
		for id, vol := range s.volumes {
			if vol.vmid == v.id {
				delete(s.volumes, id)
			}
		}
		delete(s.vms, v.id)
		return nil
	})
}

func (s *Sim) sortedVMs() []*vm {
	ids := make([]int, 0, len(s.vms))
	for id := range s.vms {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	out := make([]*vm, len(ids))
	for i, id := range ids {
		out[i] = s.vms[id]
	}
	return out
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
