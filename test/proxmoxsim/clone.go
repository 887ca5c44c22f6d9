package proxmoxsim

import (
	"sort"
	"strings"
)

func init() {
	handle("POST", "/nodes/{node}/qemu/{vmid}/clone", (*Sim).clone)
}

// clone follows qemu-server's clone_vm (src/PVE/API2/Qemu.pm at
// 010b1fe2c1494e82c0e658af79c4d854703f6f1b). Before the worker:
//   - the source must exist on the node and not be locked, the target id
//     must be free ("unable to create VM <id>: config file already exists");
//   - a target node must be another cluster node, a linked clone of a
//     non-template is refused;
//   - the storages the copies go to need Datastore.AllocateSpace
//     ($check_storage_access_clone: every disk that is not a CD-ROM, on
//     the 'storage' parameter's storage or its own), and every NIC's
//     bridge SDN.Use (check_bridge_access on the source's config);
//   - a pool must exist, and the new VM is added to it.
//
// The worker copies every option but snapshot data, unused disks and
// 'template'; each NIC gets a new MAC address; each disk and the
// cloud-init drive become new volumes of the new VM (clone_disk), the
// disk keeping its size and content; the new VM is locked 'clone' until
// the worker ends; name defaults to "Copy-of-VM-<name>".
func (s *Sim) clone(c *call) (any, *apiError) {
	src, aerr := s.vmOn(c)
	if aerr != nil {
		return nil, aerr
	}
	newid := 0
	if n, err := parseVMID(c.get("newid")); err == nil {
		newid = n
	}
	if aerr := src.checkLock(); aerr != nil {
		return nil, aerr
	}
	if s.refused < s.opts.RefuseClones {
		// pve-common PVE::RESTEnvironment::fork_worker, when the worker
		// does not report its UPID in time.
		s.refused++
		return nil, die("got no worker upid - start worker failed")
	}
	if s.vms[newid] != nil {
		return nil, die("unable to create VM %d: config file already exists", newid)
	}
	target := c.get("target")
	if target == "" {
		target = src.node
	} else if s.nodes[target] == nil {
		return nil, die("no such cluster node '%s'", target)
	}
	full := c.get("full") == "1" || !src.isTemplate()
	if !full {
		// Linked clones need a snapshot-capable base; the suite only
		// makes full clones, so refuse rather than pretend.
		return nil, die("proxmoxsim: linked clones are not simulated; clone with full=1")
	}
	pool := c.get("pool")
	if pool != "" && s.access.Pools[pool] == nil {
		return nil, permError("pool '" + pool + "' does not exist")
	}
	storage := c.get("storage")
	if storage != "" {
		if st, ok := s.storages[storage]; !ok || !hasContent(st, "images") {
			return nil, die("storage '%s' does not support vm images", storage)
		}
	}
	for _, opt := range sortedKeys(src.conf) {
		if !isDrive(opt) {
			continue
		}
		p, _ := parseProps(opt, src.conf[opt])
		if p.keys["media"] == "cdrom" || p.def == "" || p.def == "none" {
			continue
		}
		sid, _, _ := strings.Cut(p.def, ":")
		if storage != "" {
			sid = storage
		}
		if err := s.access.check(c.who, "/storage/"+sid, "Datastore.AllocateSpace"); err != nil {
			return nil, err
		}
	}
	if err := s.checkBridgeAccess(c.who, src.conf); err != nil {
		return nil, err
	}

	nv := newVM(newid, target)
	nv.lock, nv.clones, nv.writes = "clone", 1, 1
	var vols []*volume
	disks := 0
	opts := make([]string, 0, len(src.conf))
	for k := range src.conf {
		opts = append(opts, k)
	}
	sort.Strings(opts)
	for _, opt := range opts {
		val := src.conf[opt]
		switch {
		case opt == "template" || strings.HasPrefix(opt, "unused"):
			continue
		case isNet(opt):
			p, _ := parseProps(opt, val)
			p.keys["macaddr"] = randomMAC()
			nv.conf[opt] = p.String(opt)
		case isDrive(opt):
			p, _ := parseProps(opt, val)
			if p.keys["media"] == "cdrom" && !isCloudInit(p.def) {
				nv.conf[opt] = val
				continue
			}
			old := s.volumes[p.def]
			if old == nil {
				return nil, die("volume '%s' does not exist", p.def)
			}
			st, _, _ := strings.Cut(p.def, ":")
			if storage != "" {
				st = storage
			}
			name := st + ":vm-" + itoa(newid) + "-cloudinit"
			if !isCloudInit(p.def) {
				name = st + ":vm-" + itoa(newid) + "-disk-" + itoa(disks)
				disks++
			}
			vols = append(vols, &volume{id: name, node: target, size: old.size, os: old.os, vmid: newid})
			p.def = name
			nv.conf[opt] = p.String(opt)
		default:
			nv.conf[opt] = val
		}
	}
	nv.conf["smbios1"] = "uuid=" + uuid()
	if _, ok := nv.conf["vmgenid"]; ok {
		nv.conf["vmgenid"] = uuid()
	}
	nv.conf["name"] = "Copy-of-VM-" + src.conf["name"]
	if n := c.get("name"); n != "" {
		nv.conf["name"] = n
	}
	if d := c.get("description"); d != "" {
		nv.conf["description"] = d
	}
	upid, aerr := s.startTask(src.node, "qmclone", itoa(src.id), c.who, s.opts.TaskTime, func(*task) error {
		nv.lock = ""
		return nil
	})
	if aerr != nil {
		return nil, aerr
	}
	for _, vol := range vols {
		s.volumes[vol.id] = vol
	}
	s.vms[newid] = nv
	if pool != "" {
		s.access.Pools[pool].VMs[newid] = true
	}
	s.opts.Logf("proxmoxsim: cloned %d to %d on %s", src.id, newid, target)
	return upid, nil
}

func parseVMID(s string) (int, error) {
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, errNotVMID
		}
		n = n*10 + int(r-'0')
	}
	return n, nil
}

type simErr string

func (e simErr) Error() string { return string(e) }

const errNotVMID = simErr("not a VM id")
