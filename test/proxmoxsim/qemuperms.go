package proxmoxsim

import (
	"fmt"
	"regexp"
	"strings"
)

// The privileges qemu-server checks in code beyond a method's schema
// permissions (which for a config update only ask for any one
// VM.Config.* privilege). Each follows qemu-server src/PVE/API2/Qemu.pm at
// 010b1fe2c1494e82c0e658af79c4d854703f6f1b unless named otherwise.

func set(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// The option groups of $check_vm_modify_config_perm ($cpuoptions,
// $memoryoptions, $hwtypeoptions, $generaloptions, $vmpoweroptions,
// $diskoptions, $cloudinitoptions).
var (
	cpuOptions       = set("cores", "cpu", "runningcpu", "cpulimit", "cpuunits", "numa", "smp", "sockets", "vcpus")
	memoryOptions    = set("memory", "balloon", "shares", "allow-ksm")
	hwtypeOptions    = set("acpi", "hotplug", "kvm", "machine", "runningmachine", "scsihw", "smbios1", "tablet", "vga", "watchdog", "audio0", "rng0")
	generalOptions   = set("agent", "autostart", "bios", "description", "keyboard", "localtime", "migrate_downtime", "migrate_speed", "name", "onboot", "ostype", "protection", "reboot", "startdate", "startup", "tdf", "template")
	vmpowerOptions   = set("freeze")
	diskOptions      = set("boot", "bootdisk", "vmstatestorage")
	cloudinitOptions = set("cicustom", "cipassword", "citype", "ciuser", "ciupgrade", "nameserver", "searchdomain", "sshkeys")
	skipOptionsRE    = regexp.MustCompile(`^(?:unused|serial|usb|hostpci|virtiofs)\d+$`)
	numaRE           = regexp.MustCompile(`^numa\d+$`)
	netRE2           = regexp.MustCompile(`^net\d+$`)
	ipconfigRE       = regexp.MustCompile(`^ipconfig\d+$`)
)

// checkModifyConfigPerm is $check_vm_modify_config_perm: the privilege
// each option (set or deleted) needs on the VM. Drives, serial ports and
// tags are checked elsewhere, by value; an option in no group is root's.
func (s *Sim) checkModifyConfigPerm(who string, id int, keys []string) *apiError {
	if who == "root@pam" {
		return nil
	}
	for _, opt := range keys {
		var err *apiError
		switch {
		case isDrive(opt) || opt == "cdrom" || skipOptionsRE.MatchString(opt) || opt == "tags":
			continue
		case cpuOptions[opt] || numaRE.MatchString(opt):
			err = s.access.checkVMPerm(who, id, false, "VM.Config.CPU")
		case memoryOptions[opt]:
			err = s.access.checkVMPerm(who, id, false, "VM.Config.Memory")
		case hwtypeOptions[opt]:
			err = s.access.checkVMPerm(who, id, false, "VM.Config.HWType")
		case generalOptions[opt]:
			err = s.access.checkVMPerm(who, id, false, "VM.Config.Options")
			if err == nil && opt == "startup" {
				err = s.access.check(who, "/", "Sys.Modify")
			}
		case vmpowerOptions[opt]:
			err = s.access.checkVMPerm(who, id, false, "VM.PowerMgmt")
		case diskOptions[opt]:
			err = s.access.checkVMPerm(who, id, false, "VM.Config.Disk")
		case netRE2.MatchString(opt) || opt == "running-nets-host-mtu":
			err = s.access.checkVMPerm(who, id, false, "VM.Config.Network")
		case cloudinitOptions[opt] || ipconfigRE.MatchString(opt):
			err = s.access.checkVMPerm(who, id, true, "VM.Config.Cloudinit", "VM.Config.Network")
		case opt == "vmstate":
			err = s.access.checkVMPerm(who, id, false, "VM.Config.Disk", "VM.PowerMgmt")
		default:
			return die("only root can set '%s' config", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkDrivePerms is update_vm_api's $check_drive_perms, run inside the
// update (the task, for the asynchronous POST) for the old and the new
// value of every drive changed or deleted: a cloud-init drive needs both
// VM.Config.Cloudinit and VM.Config.CDROM, another CD-ROM VM.Config.CDROM,
// a disk VM.Config.Disk.
func (s *Sim) checkDrivePerms(who string, id int, opt, val string) *apiError {
	if who == "root@pam" {
		return nil
	}
	p, _ := parseProps(opt, val)
	switch {
	case isCloudInit(p.def) || strings.HasSuffix(p.def, ":cloudinit"):
		return s.access.checkVMPerm(who, id, false, "VM.Config.Cloudinit", "VM.Config.CDROM")
	case p.keys["media"] == "cdrom":
		return s.access.checkVMPerm(who, id, false, "VM.Config.CDROM")
	}
	return s.access.checkVMPerm(who, id, false, "VM.Config.Disk")
}

// checkStorageAccess is $check_storage_access, before the update forks:
//   - a new disk ("<storage>:<GiB>") needs Datastore.AllocateSpace on its
//     storage, which must hold images ("storage '<id>' does not support
//     vm images");
//   - an existing volume, and every cicustom snippet, needs read access
//     (pve-storage src/PVE/Storage.pm at
//     8652cb9de3dc0b2e03ad2324a02807325f1a1f49, check_volume_access: a
//     volume of the VM itself, or Datastore.Allocate on its storage; a
//     snippet of the wrong content type is refused);
//   - "<storage>:cloudinit" and "none" need nothing here.
func (s *Sim) checkStorageAccess(who string, id int, params map[string]string) *apiError {
	for _, opt := range sortedKeys(params) {
		val := params[opt]
		if !isDrive(opt) {
			continue
		}
		p, _ := parseProps(opt, val)
		file := p.def
		sid, volname, _ := strings.Cut(file, ":")
		switch {
		case file == "" || file == "none" || file == "cloudinit" || volname == "cloudinit":
		case p.keys["media"] == "cdrom" && file == "cdrom":
			if err := s.access.check(who, "/", "Sys.Console"); err != nil {
				return err
			}
		case p.keys["media"] != "cdrom" && newVolumeRE.MatchString(file):
			if err := s.access.check(who, "/storage/"+sid, "Datastore.AllocateSpace"); err != nil {
				return err
			}
			if st, ok := s.storages[sid]; !ok || !hasContent(st, "images") {
				if !ok {
					return die("storage '%s' does not exist", sid)
				}
				return paramError(map[string]string{"storage": fmt.Sprintf("storage '%s' does not support vm images", sid)})
			}
		default:
			if err := s.checkVolumeAccess(who, id, file, ""); err != nil {
				return err
			}
		}
	}
	if cc := params["cicustom"]; cc != "" {
		p, _ := parseProps("cicustom", cc)
		for _, k := range sortedKeys(p.keys) {
			if err := s.checkVolumeAccess(who, id, p.keys[k], "snippets"); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkVolumeAccess is pve-storage's check_volume_access for the volumes
// the simulator has: disk images (owned by a VM) and snippets.
func (s *Sim) checkVolumeAccess(who string, id int, volid, want string) *apiError {
	sid, volname, ok := strings.Cut(volid, ":")
	if !ok {
		if who != "root@pam" {
			return die("Only root can pass arbitrary filesystem paths.")
		}
		return nil
	}
	vtype, owner := "images", 0
	if strings.HasPrefix(volname, "snippets/") {
		vtype = "snippets"
	} else if vol := s.volumes[volid]; vol != nil {
		owner = vol.vmid
	}
	if want != "" && vtype != want {
		return die("unable to use volume %s - content type needs to be '%s'", volid, want)
	}
	if s.access.check(who, "/storage/"+sid, "Datastore.Allocate") == nil {
		return nil
	}
	switch {
	case owner != 0 && owner == id:
		return nil
	case vtype == "images" && owner != 0:
		if err := s.access.check(who, "/storage/"+sid, "Datastore.Audit"); err != nil {
			return err
		}
		return s.access.check(who, fmt.Sprintf("/vms/%d", owner), "VM.Config.Disk")
	}
	return die("missing privileges to access %s", volid)
}

// checkBridgeAccess is qemu-server's check_bridge_access (src/PVE/QemuServer.pm
// at dab637268eb2944128a6ecff219ffebd571b0968): a NIC's bridge needs SDN.Use
// on /sdn/zones/localnetwork/<bridge>, or on its VLAN
// (/sdn/zones/localnetwork/<bridge>/<tag>), checked by
// RPCEnvironment's check_sdn_bridge.
func (s *Sim) checkBridgeAccess(who string, params map[string]string) *apiError {
	if who == "root@pam" {
		return nil
	}
	for _, opt := range sortedKeys(params) {
		if !isNet(opt) {
			continue
		}
		p, err := parseProps(opt, params[opt])
		if err != nil || p.keys["bridge"] == "" {
			continue
		}
		path := "/sdn/zones/localnetwork/" + p.keys["bridge"]
		if tag := p.keys["tag"]; tag != "" {
			if s.access.checkAny(who, path+"/"+tag, "SDN.Use") == nil {
				continue
			}
		}
		if err := s.access.checkAny(who, path, "SDN.Use"); err != nil {
			return err
		}
	}
	return nil
}

// bridgeVisible is the node network list's "always check bridge access":
// a bridge is listed only to a caller with SDN.Audit or SDN.Use on it or on
// one of its VLANs (check_sdn_bridge).
func (s *Sim) bridgeVisible(who, bridge string) bool {
	if who == "root@pam" {
		return true
	}
	path := "/sdn/zones/localnetwork/" + bridge
	if s.access.checkAny(who, path, "SDN.Audit", "SDN.Use") == nil {
		return true
	}
	for p := range s.access.ACL {
		if strings.HasPrefix(p, path+"/") && s.access.checkAny(who, p, "SDN.Audit", "SDN.Use") == nil {
			return true
		}
	}
	return false
}
