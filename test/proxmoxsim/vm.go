package proxmoxsim

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

type vm struct {
	id   int
	node string
	// conf is the config in effect; pending holds changes not applied
	// yet and pendingDelete options to remove (qemu-server's [PENDING]
	// section), applied at the next cold start.
	conf          map[string]string
	pending       map[string]string
	pendingDelete map[string]bool
	running       bool
	lock          string
	boot          Boot
	// bootedAt is when the guest's OS came up (zero: it did not).
	bootedAt time.Time
	starts   int
	clones   int
	writes   int
}

// A volume is a disk image. os marks one that holds an operating system:
// the template's disk and full copies of it. A disk allocated by a config
// update ("local-lvm:16") is empty.
type volume struct {
	id   string // local-lvm:vm-1053-disk-0
	node string // the node whose storage holds it (node-local storages)
	size int64
	os   bool
	vmid int
}

const imageStorage = "local-lvm"

func newVM(id int, node string) *vm {
	return &vm{id: id, node: node, conf: map[string]string{}, pending: map[string]string{}, pendingDelete: map[string]bool{}}
}

func (s *Sim) addTemplate(t Template) {
	v := newVM(t.VMID, t.Node)
	disk := &volume{id: fmt.Sprintf("%s:base-%d-disk-0", imageStorage, t.VMID), node: t.Node, size: t.DiskGiB << 30, os: true, vmid: t.VMID}
	ci := &volume{id: fmt.Sprintf("%s:vm-%d-cloudinit", imageStorage, t.VMID), node: t.Node, size: 4 << 20, vmid: t.VMID}
	s.volumes[disk.id], s.volumes[ci.id] = disk, ci
	// What qmrestore of nixpkgs' VMA (nixos/modules/virtualisation/
	// proxmox-image.nix qemuConf defaults: virtio0, serial0 socket, agent,
	// ide2 cloud-init drive, scsihw virtio-scsi-single) and `qm template`
	// leave behind.
	for k, val := range map[string]string{
		"name": t.Name, "template": "1", "agent": "1", "cores": "2", "memory": "2048",
		"ostype": "l26", "scsihw": or(t.SCSIHardware, "virtio-scsi-single"), "serial0": "socket", "bios": "seabios",
		"net0":          "virtio=" + randomMAC() + ",bridge=vmbr0,firewall=1",
		t.DiskInterface: disk.id + ",size=" + formatSize(disk.size),
		"ide2":          ci.id + ",media=cdrom",
		"smbios1":       "uuid=" + uuid(),
		"vmgenid":       uuid(),
	} {
		v.conf[k] = val
	}
	if t.Boot != "" {
		v.conf["boot"] = t.Boot
	}
	s.vms[t.VMID] = v
}

func (v *vm) isTemplate() bool { return v.conf["template"] == "1" }

// effective is the config with the pending changes applied: what GET
// .../config answers by default ('current' unset).
func (v *vm) effective() map[string]string {
	out := make(map[string]string, len(v.conf)+len(v.pending))
	for k, val := range v.conf {
		if !v.pendingDelete[k] {
			out[k] = val
		}
	}
	for k, val := range v.pending {
		out[k] = val
	}
	return out
}

// applyPending is vmconfig_apply_pending: every pending change and
// deletion takes effect (a replaced or removed disk is kept as unusedN).
func (s *Sim) applyPending(v *vm) {
	for _, k := range sortedKeys(v.pendingDelete) {
		s.dropOption(v, k)
	}
	for _, k := range sortedKeys(v.pending) {
		s.replaceOption(v, k, v.pending[k])
	}
	v.pending, v.pendingDelete = map[string]string{}, map[string]bool{}
}

// dropOption removes an option from the config in effect; a disk's volume
// becomes unusedN (vmconfig_register_unused_drive), a cloud-init drive is
// freed.
func (s *Sim) dropOption(v *vm, k string) {
	val, ok := v.conf[k]
	if !ok {
		return
	}
	delete(v.conf, k)
	if isDrive(k) {
		p, _ := parseProps(k, val)
		switch {
		case isCloudInit(p.def):
			delete(s.volumes, p.def)
		case s.volumes[p.def] != nil:
			v.conf[s.freeUnused(v)] = p.def
		}
	}
}

// replaceOption sets an option in the config in effect; a disk replaced by
// another volume keeps the old one as unusedN.
func (s *Sim) replaceOption(v *vm, k, val string) {
	if old, ok := v.conf[k]; ok && isDrive(k) {
		op, _ := parseProps(k, old)
		np, _ := parseProps(k, val)
		if op.def != np.def && s.volumes[op.def] != nil && !isCloudInit(op.def) {
			v.conf[s.freeUnused(v)] = op.def
		}
	}
	v.conf[k] = val
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkLock is PVE::AbstractConfig::check_lock: most actions are refused
// while a lock (clone, migrate, backup...) is set.
func (v *vm) checkLock() *apiError {
	if v.lock != "" {
		return die("VM is locked (%s)", v.lock)
	}
	return nil
}

// vmOn finds VM id for a call proxied to node: PVE::QemuConfig::load_config
// reads nodes/<node>/qemu-server/<id>.conf, so a VM on another node (or
// none) "does not exist" there.
func (s *Sim) vmOn(c *call) (*vm, *apiError) {
	node, id := c.get("node"), c.vmid()
	v := s.vms[id]
	if v == nil || v.node != node {
		return nil, die("Configuration file 'nodes/%s/qemu-server/%d.conf' does not exist", node, id)
	}
	return v, nil
}

func (v *vm) state(s *Sim) VMState {
	st := VMState{ID: v.id, Node: v.node, Config: v.effective(), Pending: map[string]string{}, Status: "stopped",
		Lock: v.lock, Disks: map[string]int64{}, Boot: v.boot, Starts: v.starts, Clones: v.clones}
	for k, val := range v.pending {
		st.Pending[k] = val
	}
	for k := range v.pendingDelete {
		st.Pending[k] = "(delete)"
	}
	if v.running {
		st.Status = "running"
	}
	st.Boot.Booted = v.guestUp()
	st.Boot.Addresses = append([]string(nil), v.boot.Addresses...)
	for opt, val := range st.Config {
		if !isDrive(opt) {
			continue
		}
		p, _ := parseProps(opt, val)
		if vol := s.volumes[p.def]; vol != nil && !isCloudInit(p.def) {
			st.Disks[opt] = vol.size
		}
	}
	return st
}

// guestUp reports whether the guest's OS runs (its agent can answer).
func (v *vm) guestUp() bool {
	return v.running && !v.bootedAt.IsZero() && !time.Now().Before(v.bootedAt)
}

var cloudInitVolRE = regexp.MustCompile(`:vm-\d+-cloudinit(\.\w+)?$`)

// isCloudInit is qemu-server's drive_is_cloudinit: the volume name is
// vm-<id>-cloudinit.
func isCloudInit(volid string) bool { return cloudInitVolRE.MatchString(volid) }

// nextDiskName is PVE::Storage::Plugin::find_free_diskname: vm-<id>-disk-<n>
// with the lowest n not in use.
func (s *Sim) nextDiskName(storage string, id int) string {
	for n := 0; ; n++ {
		name := fmt.Sprintf("%s:vm-%d-disk-%d", storage, id, n)
		if s.volumes[name] == nil {
			return name
		}
	}
}

func (s *Sim) freeUnused(v *vm) string {
	for n := 0; ; n++ {
		k := "unused" + itoa(n)
		if _, ok := v.conf[k]; !ok {
			return k
		}
	}
}

// randomMAC is PVE::Tools::random_ether_addr with Proxmox's own prefix
// BC:24:11 (the datacenter default since PVE 8.1).
func randomMAC() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("BC:24:11:%02X:%02X:%02X", b[0], b[1], b[2])
}

func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// bridgeKey names a NIC's L2 segment for DHCP: the bridge, or bridge.tag.
func bridgeKey(net props) string {
	k := net.keys["bridge"]
	if tag := net.keys["tag"]; tag != "" {
		k += "." + tag
	}
	return k
}

func lowerMAC(m string) string { return strings.ToLower(m) }
