package proxmoxsim

import (
	"crypto/sha1"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

func init() {
	handle("GET", "/nodes/{node}/qemu/{vmid}/config", (*Sim).getConfig)
	handle("GET", "/nodes/{node}/qemu/{vmid}/pending", (*Sim).getPending)
	handle("PUT", "/nodes/{node}/qemu/{vmid}/config", func(s *Sim, c *call) (any, *apiError) {
		_, err := s.updateConfig(c, true)
		return nil, err
	})
	// The asynchronous variant answers the UPID of its worker.
	handle("POST", "/nodes/{node}/qemu/{vmid}/config", func(s *Sim, c *call) (any, *apiError) {
		return s.updateConfig(c, false)
	})
	handle("PUT", "/nodes/{node}/qemu/{vmid}/cloudinit", (*Sim).regenerateCloudInit)
}

// getConfig answers the config with pending changes applied, as GET
// .../config does by default, or the config in effect with current=1;
// plus its digest.
func (s *Sim) getConfig(c *call) (any, *apiError) {
	v, aerr := s.vmOn(c)
	if aerr != nil {
		return nil, aerr
	}
	conf := v.effective()
	if c.get("current") == "1" {
		conf = v.conf
	}
	out := map[string]any{"digest": v.digest()}
	for k, val := range conf {
		out[k] = s.jsonValue(k, val)
	}
	if v.lock != "" {
		out["lock"] = v.lock
	}
	return out, nil
}

// getPending is GET .../pending (PVE::GuestHelpers::config_with_pending_array):
// every option with its value in effect, its pending value, or delete=1.
func (s *Sim) getPending(c *call) (any, *apiError) {
	v, aerr := s.vmOn(c)
	if aerr != nil {
		return nil, aerr
	}
	var out []map[string]any
	for _, k := range sortedKeys(v.conf) {
		item := map[string]any{"key": k, "value": s.jsonValue(k, v.conf[k])}
		if p, ok := v.pending[k]; ok {
			item["pending"] = s.jsonValue(k, p)
		}
		if v.pendingDelete[k] {
			item["delete"] = 1
		}
		out = append(out, item)
	}
	for _, k := range sortedKeys(v.pending) {
		if _, ok := v.conf[k]; !ok {
			out = append(out, map[string]any{"key": k, "pending": s.jsonValue(k, v.pending[k])})
		}
	}
	return out, nil
}

func (v *vm) digest() string {
	keys := sortedKeys(v.conf)
	h := sha1.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s: %s\n", k, v.conf[k])
	}
	for _, k := range sortedKeys(v.pending) {
		fmt.Fprintf(h, "[PENDING] %s: %s\n", k, v.pending[k])
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// configParams are update_vm_api's parameters that are not options.
var configParams = set("node", "vmid", "delete", "revert", "digest", "skiplock", "force", "background_delay", "import-working-storage", "skip_cloud_init")

var newVolumeRE = regexp.MustCompile(`^(?:([^:\s]+):)?(\d+(?:\.\d+)?)$`)

// updateConfig follows qemu-server's $update_vm_api (src/PVE/API2/Qemu.pm
// at 010b1fe2c1494e82c0e658af79c4d854703f6f1b). Before it forks (so these
// are the HTTP answer, for PUT and POST alike):
//   - "no options specified"; skiplock only for root; a 'delete' or
//     'revert' naming an unknown option or one the call also sets;
//   - the option privileges ($check_vm_modify_config_perm, for the set and
//     the deleted options), the storages' ($check_storage_access) and the
//     bridges' (check_bridge_access) - qemuperms.go;
//   - the VM's lock and the digest ($load_and_check_config).
//
// Then, in the worker (for POST a task whose failure is its exit status;
// for PUT the answer): each drive's old and new value's privileges
// ($check_drive_perms), the disks created (create_disks: a new volume for
// "<storage>:<GiB>", the VM's cloud-init drive for "<storage>:cloudinit",
// "cloud-init drive is already attached", a missing volume), a boot order
// naming a device the VM will not have ("invalid bootorder: device '<d>'
// does not exist'"). Deleting an option not set is a warning
// ("cannot delete '<opt>' - not set in current configuration!"), so the
// POST task ends "WARNINGS: n".
//
// Changes go to the pending section; a stopped VM applies them at once
// (vmconfig_apply_pending), a running one only what hotplugs
// (hotplug.go), the rest at its next cold start.
func (s *Sim) updateConfig(c *call, sync bool) (any, *apiError) {
	v, aerr := s.vmOn(c)
	if aerr != nil {
		return nil, aerr
	}
	set := map[string]string{}
	for k, val := range c.params {
		if !configParams[k] {
			set[k] = val
		}
	}
	if c.get("skiplock") == "1" && c.who != "root@pam" {
		return nil, paramError(map[string]string{"skiplock": "Only root may use this option."})
	}
	if c.get("delete") == "" && c.get("revert") == "" && len(set) == 0 {
		return nil, die("no options specified")
	}
	if ide2, ok := set["cdrom"]; ok { // $resolve_cdrom_alias
		if !strings.Contains(ide2, "media=") {
			ide2 += ",media=cdrom"
		}
		set["ide2"] = ide2
		delete(set, "cdrom")
	}
	revert := map[string]bool{}
	for _, opt := range splitList(c.get("revert")) {
		if !s.isOption(opt) {
			return nil, paramError(map[string]string{"revert": fmt.Sprintf("unknown option '%s'", opt)})
		}
		if _, both := set[opt]; both {
			return nil, paramError(map[string]string{"delete": fmt.Sprintf("you can't use '-%s' and -revert %s' at the same time", opt, opt)})
		}
		revert[opt] = true
	}
	var dels []string
	for _, opt := range splitList(c.get("delete")) {
		if opt == "cdrom" {
			opt = "ide2"
		}
		if _, both := set[opt]; both {
			return nil, paramError(map[string]string{"delete": fmt.Sprintf("you can't use '-%s' and -delete %s' at the same time", opt, opt)})
		}
		if revert[opt] {
			return nil, paramError(map[string]string{"revert": fmt.Sprintf("you can't use '-delete %s' and -revert %s' at the same time", opt, opt)})
		}
		if !s.isOption(opt) {
			return nil, paramError(map[string]string{"delete": fmt.Sprintf("unknown option '%s'", opt)})
		}
		dels = append(dels, opt)
	}
	if err := s.checkModifyConfigPerm(c.who, v.id, dels); err != nil {
		return nil, err
	}
	if err := s.checkModifyConfigPerm(c.who, v.id, sortedKeys(set)); err != nil {
		return nil, err
	}
	if err := s.checkStorageAccess(c.who, v.id, set); err != nil {
		return nil, err
	}
	if err := s.checkBridgeAccess(c.who, set); err != nil {
		return nil, err
	}
	if aerr := v.checkLock(); aerr != nil && c.get("skiplock") != "1" {
		return nil, aerr
	}
	if d := c.get("digest"); d != "" && d != v.digest() {
		return nil, die("checksum mismatch (file change by other user?)")
	}
	if sync {
		_, err := s.applyUpdate(c, v, set, dels)
		return nil, err
	}
	return s.startTask(v.node, "qmconfig", itoa(v.id), c.who, 0, func(t *task) error {
		warnings, aerr := s.applyUpdate(c, v, set, dels)
		for _, w := range warnings {
			t.warn(w)
		}
		if aerr != nil {
			return aerr
		}
		return nil
	})
}

// applyUpdate is update_vm_api's $updatefn: it writes the changes to the
// pending section and applies them. It returns the warnings it printed.
func (s *Sim) applyUpdate(c *call, v *vm, set map[string]string, dels []string) ([]string, *apiError) {
	var warnings []string
	eff := v.effective()
	for _, opt := range dels {
		val, ok := eff[opt]
		if !ok {
			warnings = append(warnings, fmt.Sprintf("cannot delete '%s' - not set in current configuration!", opt))
			continue
		}
		if isDrive(opt) {
			if err := s.checkDrivePerms(c.who, v.id, opt, val); err != nil {
				return warnings, err
			}
		}
		if opt == "tags" {
			if err := s.access.checkVMPerm(c.who, v.id, false, "VM.Config.Options"); err != nil {
				return warnings, err
			}
		}
		delete(v.pending, opt)
		v.pendingDelete[opt] = true
	}
	for _, opt := range sortedKeys(set) {
		val := set[opt]
		switch {
		case isDrive(opt):
			if old, ok := eff[opt]; ok {
				if err := s.checkDrivePerms(c.who, v.id, opt, old); err != nil {
					return warnings, err
				}
			}
			if err := s.checkDrivePerms(c.who, v.id, opt, val); err != nil {
				return warnings, err
			}
			stored, err := s.createDisk(v, opt, val)
			if err != nil {
				return warnings, err
			}
			val = stored
		case opt == "tags":
			// PVE::GuestHelpers assert_tag_permissions and
			// get_unique_tags (pve-guest-common src/PVE/GuestHelpers.pm at
			// 091598000c8dee1a348402c677d3892a1581f424): VM.Config.Options,
			// then the tags stored sorted, lower-case, once each.
			if err := s.access.checkVMPerm(c.who, v.id, false, "VM.Config.Options"); err != nil {
				return warnings, err
			}
			val = uniqueTags(val)
		case isNet(opt):
			p, _ := parseProps(opt, val)
			if p.keys["macaddr"] == "" {
				p.keys["macaddr"] = randomMAC()
			}
			val = p.String(opt)
		case opt == "boot":
			p, _ := parseProps("boot", val)
			for _, dev := range splitList(p.keys["order"]) {
				_, exists := eff[dev]
				_, setNow := set[dev]
				deleted := false
				for _, d := range dels {
					deleted = deleted || d == dev
				}
				if (!exists && !setNow) || deleted {
					return warnings, die("invalid bootorder: device '%s' does not exist'", dev)
				}
			}
		case defaultKey(opt) != "":
			p, _ := parseProps(opt, val)
			val = p.String(opt)
		}
		delete(v.pendingDelete, opt)
		v.pending[opt] = val
	}
	v.writes++
	if v.running {
		s.hotplugPending(v)
	} else {
		s.applyPending(v)
	}
	return warnings, nil
}

// createDisk is create_disks for one drive option: the value to store.
func (s *Sim) createDisk(v *vm, opt, val string) (string, *apiError) {
	p, _ := parseProps(opt, val)
	file := p.def
	storage, rest, _ := strings.Cut(file, ":")
	switch {
	case file == "none" || file == "cdrom":
		delete(p.keys, "size")
	case rest == "cloudinit":
		for k, cur := range v.effective() {
			if k != opt && isDrive(k) {
				cp, _ := parseProps(k, cur)
				if isCloudInit(cp.def) {
					return "", die("%s - cloud-init drive is already attached at '%s'", opt, k)
				}
			}
		}
		if _, ok := s.storages[storage]; !ok {
			return "", die("storage '%s' does not exist", storage)
		}
		name := fmt.Sprintf("%s:vm-%d-cloudinit", storage, v.id)
		if s.volumes[name] != nil {
			// vdisk_alloc of the fixed name vm-<id>-cloudinit: on LVM-thin
			// (pve-storage src/PVE/Storage/LvmThinPlugin.pm at
			// f8a368c63c79626544cd01fbcd1028eae79b6128, alloc_image) lvcreate
			// fails and run_command dies with its message.
			lv := strings.TrimPrefix(name, storage+":")
			return "", die("lvcreate 'pve/%s' error:   Logical Volume \"%s\" already exists in volume group \"pve\"", lv, lv)
		}
		s.volumes[name] = &volume{id: name, node: v.node, size: 4 << 20, vmid: v.id}
		p.def = name
		p.keys["media"] = "cdrom"
	case newVolumeRE.MatchString(file):
		mm := newVolumeRE.FindStringSubmatch(file)
		gib, _ := strconv.ParseFloat(mm[2], 64)
		name := s.nextDiskName(mm[1], v.id)
		vol := &volume{id: name, node: v.node, size: int64(gib * (1 << 30)), vmid: v.id}
		s.volumes[name] = vol
		p.def = name
		p.keys["size"] = formatSize(vol.size)
		s.opts.Logf("proxmoxsim: VM %d: %s is a new empty disk %s (%s)", v.id, opt, name, formatSize(vol.size))
	default:
		vol := s.volumes[file]
		if vol == nil {
			return "", die("volume %s does not exist", file)
		}
		if !isCloudInit(file) {
			p.keys["size"] = formatSize(vol.size)
		}
	}
	return p.String(opt), nil
}

// uniqueTags is get_unique_tags with the datacenter defaults.
func uniqueTags(s string) string {
	seen := map[string]bool{}
	var out []string
	for _, t := range splitList(s) {
		t = strings.ToLower(t)
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ";")
}

// regenerateCloudInit is PUT .../cloudinit (cloudinit_update): under the
// config lock it regenerates the drive now, which reads the cicustom
// snippets as a start does.
func (s *Sim) regenerateCloudInit(c *call) (any, *apiError) {
	v, aerr := s.vmOn(c)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := v.checkLock(); aerr != nil {
		return nil, aerr
	}
	if _, err := s.cloudInit(v); err != nil {
		return nil, die("%v", err)
	}
	v.writes++
	return nil, nil
}
