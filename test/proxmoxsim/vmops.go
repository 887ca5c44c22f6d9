package proxmoxsim

import (
	"fmt"
	"sort"
	"strings"
)

func init() {
	handle("PUT", "/nodes/{node}/qemu/{vmid}/resize", (*Sim).resize)
	handle("DELETE", "/nodes/{node}/qemu/{vmid}", (*Sim).destroy)
	handle("GET", "/nodes/{node}/qemu", func(s *Sim, c *call) (any, *apiError) {
		// vmlist: only the VMs the caller has VM.Audit on.
		out := []map[string]any{}
		for _, v := range s.sortedVMs() {
			if v.node != c.get("node") || s.access.check(c.who, "/vms/"+itoa(v.id), "VM.Audit") != nil {
				continue
			}
			out = append(out, map[string]any{"vmid": v.id, "name": v.conf["name"], "status": v.status(),
				"template": s.jsonValue("template", or(v.conf["template"], "0"))})
		}
		return out, nil
	})
}

// resize follows qemu-server's resize_vm: "+N" grows by N, "N" is the new
// absolute size; the volume's storage needs Datastore.AllocateSpace; a
// smaller size is refused ("shrinking disks is not supported"); a CD-ROM
// cannot be resized. It runs as a 'resize' task.
//
// The storage grows the volume in the task: on lvm and lvmthin,
// LVMPlugin's volume_resize (pve-storage src/PVE/Storage/LVMPlugin.pm at
// 1dab17545c51e23f17d0ad080f51fde733c77cc8; LvmThinPlugin.pm reuses it)
// runs `lvextend -L <size>k /dev/<vg>/<lv>` with errmsg "error resizing
// volume '<path>'", and run_command dies "<errmsg>: <lvextend's last
// stderr line>". On a thick lvm volume group without the extents lvm2
// refuses ("Insufficient free space: <n> extents needed, but only <m>
// available", lib/metadata/lv_manip.c _sufficient_pes_free); a thin
// volume's extension is not allocated from the pool, so it is never
// refused for space.
func (s *Sim) resize(c *call) (any, *apiError) {
	v, aerr := s.vmOn(c)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := v.checkLock(); aerr != nil {
		return nil, aerr
	}
	disk := c.get("disk")
	val, ok := v.conf[disk]
	if !ok {
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
	sid, _, _ := strings.Cut(p.def, ":")
	if err := s.access.check(c.who, "/storage/"+sid, "Datastore.AllocateSpace"); err != nil {
		return nil, err
	}
	sizeStr := c.get("size")
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
	return s.startTask(v.node, "resize", itoa(v.id), c.who, s.opts.TaskTime, func(*task) error {
		if free, limited := s.lvmFreeExtents(vol.node, sid); limited {
			if need := extents(n) - extents(vol.size); need > free {
				_, lv, _ := strings.Cut(vol.id, ":")
				return fmt.Errorf("error resizing volume '/dev/%s/%s':   Insufficient free space: %d extents needed, but only %d available",
					vgName(s.storages[sid]), lv, need, free)
			}
		}
		vol.size = n
		if cur, ok := v.conf[disk]; ok {
			cp, _ := parseProps(disk, cur)
			cp.keys["size"] = formatSize(n)
			v.conf[disk] = cp.String(disk)
		}
		return nil
	})
}

// destroy follows qemu-server's destroy_vm: a running VM is refused
// ("VM <id> is running - destroy failed"), a locked one too; the worker
// frees every volume the VM owns and removes it from its pool.
func (s *Sim) destroy(c *call) (any, *apiError) {
	v, aerr := s.vmOn(c)
	if aerr != nil {
		return nil, aerr
	}
	if c.get("skiplock") == "1" && c.who != "root@pam" {
		return nil, paramError(map[string]string{"skiplock": "Only root may use this option."})
	}
	if aerr := v.checkLock(); aerr != nil {
		return nil, aerr
	}
	if v.running {
		return nil, die("VM %d is running - destroy failed", v.id)
	}
	v.lock = "destroyed"
	v.writes++
	return s.startTask(v.node, "qmdestroy", itoa(v.id), c.who, s.opts.TaskTime, func(*task) error {
		for id, vol := range s.volumes {
			if vol.vmid == v.id {
				delete(s.volumes, id)
			}
		}
		for _, p := range s.access.Pools {
			delete(p.VMs, v.id)
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
