package proxmoxsim

import (
	"net/url"
	"sort"
	"strings"
)

func init() {
	handle("POST", `/nodes/([^/]+)/qemu/(\d+)/clone`, (*Sim).clone)
}

// clone follows qemu-server PVE::API2::Qemu clone_vm:
//   - newid is a 'pve-vmid' (100 and up) and must not exist ("unable to
//     create VM <id>: config file already exists");
//   - the source must not be locked (check_lock);
//   - a full clone copies every option but snapshot data, unused disks and
//     'template'; each NIC gets a new MAC address ("always change MAC!
//     address"); each disk and the cloud-init drive become new volumes of
//     the new VM (clone_disk), the disk keeping its size and content;
//   - the new VM is locked 'clone' until the worker ends;
//   - name defaults to "Copy-of-VM-<name>", description is the request's.
func (s *Sim) clone(m []string, f url.Values) (any, *apiError) {
	src, aerr := s.getVM(m[2])
	if aerr != nil {
		return nil, aerr
	}
	newid, err := checkVMID(f.Get("newid"))
	if err != nil {
		return nil, paramError(map[string]string{"newid": err.Error()})
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
	full := f.Get("full") == "1" || !src.isTemplate()
	if !full {
		// Linked clones need a snapshot-capable base; the suite only makes
		// full clones, so refuse rather than pretend.
		return nil, die("proxmoxsim: linked clones are not simulated; clone with full=1")
	}
	storage := f.Get("storage")
	if storage == "" {
		storage = imageStorage
	}
	if storage != imageStorage {
		return nil, die("storage '%s' does not exist", storage)
	}

	nv := &vm{id: newid, conf: map[string]string{}, lock: "clone", clones: 1, writes: 1}
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
			name := storage + ":vm-" + itoa(newid) + "-cloudinit"
			if !isCloudInit(p.def) {
				name = storage + ":vm-" + itoa(newid) + "-disk-" + itoa(disks)
				disks++
			}
			vols = append(vols, &volume{id: name, size: old.size, os: old.os, vmid: newid})
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
	if n := f.Get("name"); n != "" {
		nv.conf["name"] = n
	}
	if d := f.Get("description"); d != "" {
		nv.conf["description"] = d
	}
	upid, aerr := s.startTask("qmclone", m[2], s.opts.TaskTime, func() error {
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
	s.opts.Logf("proxmoxsim: cloned %d to %d", src.id, newid)
	return upid, nil
}
