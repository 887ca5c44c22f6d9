package proxmoxsim

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"strings"
	"time"
)

type vm struct {
	id      int
	conf    map[string]string
	running bool
	lock    string
	boot    Boot
	// bootedAt is when the guest's OS came up (zero: it did not).
	bootedAt time.Time
	starts   int
	clones   int
	writes   int
}

// A volume is a disk image on storage local-lvm. os marks one that holds an
// operating system: the template's disk and full copies of it. A disk
// allocated by a config update ("local-lvm:16") is empty.
type volume struct {
	id   string // local-lvm:vm-1053-disk-0
	size int64
	os   bool
	vmid int
}

const imageStorage = "local-lvm"

func (s *Sim) addTemplate(t Template) {
	v := &vm{id: t.VMID, conf: map[string]string{}}
	disk := &volume{id: fmt.Sprintf("%s:base-%d-disk-0", imageStorage, t.VMID), size: t.DiskGiB << 30, os: true, vmid: t.VMID}
	ci := &volume{id: fmt.Sprintf("%s:vm-%d-cloudinit", imageStorage, t.VMID), size: 4 << 20, vmid: t.VMID}
	s.volumes[disk.id], s.volumes[ci.id] = disk, ci
	// What qmrestore of nixpkgs' VMA (nixos/modules/virtualisation/
	// proxmox-image.nix qemuConf defaults: virtio0, serial0 socket, agent,
	// ide2 cloud-init drive, scsihw virtio-scsi-single) and `qm template`
	// leave behind.
	for k, val := range map[string]string{
		"name": t.Name, "template": "1", "agent": "1", "cores": "2", "memory": "2048",
		"ostype": "l26", "scsihw": "virtio-scsi-single", "serial0": "socket", "bios": "seabios",
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

// checkLock is PVE::AbstractConfig::check_lock: most actions are refused
// while a lock (clone, migrate, backup...) is set.
func (v *vm) checkLock() *apiError {
	if v.lock != "" {
		return die("VM is locked (%s)", v.lock)
	}
	return nil
}

func (s *Sim) getVM(id string) (*vm, *apiError) {
	n, err := checkVMID(id)
	if err != nil {
		return nil, paramError(map[string]string{"vmid": err.Error()})
	}
	v := s.vms[n]
	if v == nil {
		// PVE::QemuConfig::load_config on a missing VM.
		return nil, die("Configuration file 'nodes/%s/qemu-server/%d.conf' does not exist", s.opts.Node, n)
	}
	return v, nil
}

func (v *vm) state(s *Sim) VMState {
	st := VMState{ID: v.id, Config: map[string]string{}, Status: "stopped", Lock: v.lock, Disks: map[string]int64{},
		Boot: v.boot, Starts: v.starts, Clones: v.clones}
	for k, val := range v.conf {
		st.Config[k] = val
	}
	if v.running {
		st.Status = "running"
	}
	st.Boot.Booted = v.guestUp()
	st.Boot.Addresses = append([]string(nil), v.boot.Addresses...)
	for opt, val := range v.conf {
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
