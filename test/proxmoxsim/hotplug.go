package proxmoxsim

import "strings"

// hotplugPending is what qemu-server's vmconfig_hotplug_pending
// (src/PVE/QemuServer.pm at dab637268eb2944128a6ecff219ffebd571b0968)
// applies to a running VM at once; everything else stays pending until
// the next cold start (vm_start_nolock applies the pending section first):
//
//   - the "fast plug" options, which do not touch the running guest:
//     description, hookscript, lock, migrate_downtime, migrate_speed, name,
//     onboot, protection, shares, startup, tags, vmstatestorage, and every
//     cloud-init option (ipconfigN, nameserver, searchdomain, cicustom,
//     ciuser, cipassword, citype, ciupgrade, sshkeys), which take effect
//     when the cloud-init drive is next generated;
//   - with the 'hotplug' option's features (default "network,disk,usb",
//     the schema's default): NICs (vmconfig_update_net: a changed bridge,
//     tag, firewall or trunks is applied even without network hotplug), disks
//     but efidisk0, tpmstate0 and new IDE or SATA ones, and the cloud-init
//     drive; memory and vcpus only with the memory and cpu features; balloon,
//     cpuunits, cpulimit, agent always;
//   - not cores, sockets, cpu, boot, bios, ostype and the rest ("skip").
func (s *Sim) hotplugPending(v *vm) {
	feats := hotplugFeatures(or(v.conf["hotplug"], "1"))
	for _, k := range sortedKeys(v.pendingDelete) {
		if s.hotplugs(v, k, "", feats) {
			s.dropOption(v, k)
			delete(v.pendingDelete, k)
		}
	}
	for _, k := range sortedKeys(v.pending) {
		if s.hotplugs(v, k, v.pending[k], feats) {
			s.replaceOption(v, k, v.pending[k])
			delete(v.pending, k)
		}
	}
}

var fastPlugOptions = set("description", "hookscript", "lock", "migrate_downtime", "migrate_speed", "name", "onboot",
	"protection", "shares", "startup", "tags", "vmstatestorage",
	"cicustom", "cipassword", "citype", "ciuser", "ciupgrade", "nameserver", "searchdomain", "sshkeys")

// hotplugs reports whether option k (new value val, "" for a deletion) is
// applied to the running VM.
func (s *Sim) hotplugs(v *vm, k, val string, feats map[string]bool) bool {
	switch {
	case fastPlugOptions[k] || ipconfigRE.MatchString(k):
		return true
	case k == "balloon" || k == "cpuunits" || k == "cpulimit" || k == "agent":
		return true
	case k == "vcpus":
		return feats["cpu"]
	case k == "memory":
		return feats["memory"]
	case isNet(k):
		if val == "" || v.conf[k] == "" {
			return feats["network"]
		}
		old, _ := parseProps(k, v.conf[k])
		nw, _ := parseProps(k, val)
		if old.keys["model"] != nw.keys["model"] || old.keys["macaddr"] != nw.keys["macaddr"] ||
			old.keys["queues"] != nw.keys["queues"] || old.keys["mtu"] != nw.keys["mtu"] ||
			old.keys["bridge"] == "" || nw.keys["bridge"] == "" {
			return feats["network"]
		}
		return true
	case isDrive(k):
		if k == "efidisk0" || k == "tpmstate0" {
			return false
		}
		nw, _ := parseProps(k, val)
		if val != "" && (isCloudInit(nw.def) || nw.keys["media"] == "cdrom") {
			return true
		}
		if old, ok := v.conf[k]; ok && val != "" {
			op, _ := parseProps(k, old)
			for _, key := range []string{"aio", "discard", "iothread", "queues", "product", "cache", "ssd", "vendor", "ro"} {
				if op.keys[key] != nw.keys[key] {
					return false
				}
			}
			return op.def == nw.def || feats["disk"]
		}
		return feats["disk"] && !strings.HasPrefix(k, "ide") && !strings.HasPrefix(k, "sata")
	}
	return false
}

// hotplugFeatures is parse_hotplug_features: "0" none, "1" the default
// "network,disk,usb".
func hotplugFeatures(s string) map[string]bool {
	switch s {
	case "0":
		return map[string]bool{}
	case "1":
		s = "network,disk,usb"
	}
	out := map[string]bool{}
	for _, f := range splitList(s) {
		out[f] = true
	}
	return out
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
