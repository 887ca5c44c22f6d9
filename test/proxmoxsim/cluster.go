package proxmoxsim

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// The cluster-wide and node endpoints bpg calls around its resources: the
// version, the cluster's resource list (how bpg finds a VM's node), pools,
// the next free VM id, storage definitions and contents, and the node's
// network (how bpg finds the node's SSH address: the first interface with
// an address and a gateway).
func init() {
	handle("GET", "/version", func(s *Sim, _ *call) (any, *apiError) {
		rel := s.api.Version[:strings.LastIndex(s.api.Version, ".")]
		return map[string]any{"version": s.api.Version, "release": rel, "repoid": "3e76eec21c4a14a7"}, nil
	})
	handle("GET", "/cluster/resources", (*Sim).clusterResources)
	handle("GET", "/cluster/nextid", func(s *Sim, c *call) (any, *apiError) {
		// pve-manager PVE/API2/Cluster.pm nextid: a given vmid is checked
		// ("VM <id> already exists"), else the lowest free id from 100.
		if c.has("vmid") {
			id := c.vmid()
			if s.vms[id] != nil {
				return nil, paramError(map[string]string{"vmid": fmt.Sprintf("VM %d already exists", id)})
			}
			return id, nil
		}
		for id := MinVMID; ; id++ {
			if s.vms[id] == nil {
				return id, nil
			}
		}
	})
	handle("GET", "/pools", func(s *Sim, c *call) (any, *apiError) {
		// Only the pools the caller has Pool.Audit on, or the one named by
		// poolid with its members (the schema's description of GET /pools;
		// the member fields are its returns).
		out := []map[string]any{}
		for _, name := range sortedKeys(s.access.Pools) {
			if s.access.check(c.who, "/pool/"+name, "Pool.Audit") != nil || c.has("poolid") && c.get("poolid") != name {
				continue
			}
			e := map[string]any{"poolid": name}
			if c.has("poolid") {
				e["members"] = s.poolMembers(name, c.get("type"))
			}
			out = append(out, e)
		}
		return out, nil
	})
	handle("GET", "/storage/{storage}", func(s *Sim, c *call) (any, *apiError) {
		st, ok := s.storages[c.get("storage")]
		if !ok {
			return nil, die("storage '%s' does not exist", c.get("storage"))
		}
		return s.storageConfig(st), nil
	})
	handle("GET", "/nodes/{node}/network", (*Sim).nodeNetwork)
	handle("GET", "/nodes/{node}/storage/{storage}/status", func(s *Sim, c *call) (any, *apiError) {
		st, ok := s.storages[c.get("storage")]
		if !ok {
			return nil, die("storage '%s' does not exist", c.get("storage"))
		}
		shared := 0
		if st.Shared {
			shared = 1
		}
		total, used := int64(1)<<40, int64(1)<<30
		if free, limited := s.lvmFreeExtents(c.get("node"), st.ID); limited {
			// LVMPlugin status: the volume group's size and free space.
			total = s.sizes[[2]string{c.get("node"), st.ID}]
			used = total - free*lvmExtent
		}
		return map[string]any{"storage": st.ID, "type": st.Type, "content": strings.Join(st.Content, ","), "active": 1, "enabled": 1,
			"shared": shared, "total": total, "used": used, "avail": total - used}, nil
	})
	handle("GET", "/nodes/{node}/storage/{storage}/content", (*Sim).listContent)
	handle("GET", "/nodes/{node}/storage/{storage}/content/{volume}", (*Sim).getContent)
	handle("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}", (*Sim).deleteContent)
}

// MinVMID is the lowest VM id (pve-common's pve-vmid format: three digits
// or more).
const MinVMID = 100

// clusterResources lists the VMs the caller may see (VM.Audit), with the
// node each is on.
func (s *Sim) clusterResources(c *call) (any, *apiError) {
	out := []map[string]any{}
	if t := c.get("type"); t != "" && t != "vm" {
		return out, nil
	}
	for _, v := range s.sortedVMs() {
		if s.access.check(c.who, "/vms/"+itoa(v.id), "VM.Audit") != nil {
			continue
		}
		r := map[string]any{
			"id": "qemu/" + strconv.Itoa(v.id), "type": "qemu", "node": v.node, "vmid": v.id,
			"name": v.conf["name"], "status": v.status(), "template": s.jsonValue("template", or(v.conf["template"], "0")),
			"maxmem": memoryMiB(v.conf) << 20,
		}
		if pool := s.access.PoolOf(v.id); pool != "" {
			r["pool"] = pool
		}
		out = append(out, r)
	}
	return out, nil
}

func (s *Sim) storageConfig(st Storage) map[string]any {
	out := map[string]any{"storage": st.ID, "type": st.Type, "content": strings.Join(st.Content, ","), "digest": "0a1b2c"}
	if st.Type == "dir" {
		out["path"] = s.StoragePath(st.ID)
	}
	if st.Type == "lvmthin" {
		out["thinpool"], out["vgname"] = "data", vgName(st)
	}
	if st.Type == "lvm" {
		out["vgname"] = vgName(st)
	}
	if st.Shared {
		out["shared"] = 1
	}
	return out
}

// nodeNetwork lists the node's bridge, with its address and gateway, to a
// caller who may see it: pve-manager's network index checks bridge access
// ("always check bridge access", check_sdn_bridge in pve-access-control
// src/PVE/RPCEnvironment.pm at 9590c6bdfe8ad0cea171516ebfeb86af241171d1:
// SDN.Audit or SDN.Use on /sdn/zones/localnetwork/<bridge> or one of its
// VLANs) and drops the bridges the caller may not use. The stored copy of
// pve-manager's PVE/API2/Network.pm (ef456bd0) predates that check; it is
// in its current master, which the search tools hold without a commit id.
func (s *Sim) nodeNetwork(c *call) (any, *apiError) {
	n := s.nodes[c.get("node")]
	out := []map[string]any{}
	if t := c.get("type"); t != "" && t != "bridge" && t != "any_bridge" && t != "any_local_bridge" {
		return out, nil
	}
	if s.bridgeVisible(c.who, "vmbr0") {
		out = append(out, map[string]any{
			"iface": "vmbr0", "type": "bridge", "active": 1, "autostart": 1, "method": "static",
			"address": n.Address, "netmask": "255.0.0.0", "cidr": n.Address + "/8",
			"gateway": "127.0.0.1", "bridge_ports": "eno1", "bridge_vlan_aware": 1, "priority": 3,
			"families": []string{"inet"},
		})
	}
	return out, nil
}

// realVolumeID is Content.pm's $real_volume_id: a volume with a storage
// prefix, which must agree with the storage of the path, or a name within
// that storage.
func realVolumeID(storage, volume string) (string, *apiError) {
	if sid, _, ok := strings.Cut(volume, ":"); ok {
		if storage != "" && sid != storage {
			return "", paramError(map[string]string{"volume": fmt.Sprintf("storage ID mismatch (%s != %s)", sid, storage)})
		}
		return volume, nil
	}
	if storage == "" {
		return "", paramError(map[string]string{"volume": "no storage specified - incomplete volume ID"})
	}
	return storage + ":" + volume, nil
}

// The storage content methods follow pve-storage src/PVE/API2/Storage/Content.pm
// at 559867f79be200615d1889f08c941df7683a85ab: the listing shows only the
// volumes the caller has access to (check_volume_access, so a snippet only
// with Datastore.Allocate on its storage); a volume's info needs access to
// it; a deletion needs Datastore.Allocate on the storage and runs as an
// 'imgdel' task.

func (s *Sim) listContent(c *call) (any, *apiError) {
	st, ok := s.storages[c.get("storage")]
	if !ok {
		return nil, die("storage '%s' does not exist", c.get("storage"))
	}
	node, want := c.get("node"), c.get("content")
	out := []map[string]any{}
	if hasContent(st, "snippets") && (want == "" || want == "snippets") {
		entries, _ := os.ReadDir(s.SnippetsDirOf(node, st.ID))
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue
			}
			volid := st.ID + ":snippets/" + e.Name()
			if s.checkVolumeAccess(c.who, 0, volid, "") != nil {
				continue
			}
			out = append(out, map[string]any{"volid": volid, "content": "snippets", "format": "snippet",
				"size": info.Size(), "ctime": info.ModTime().Unix()})
		}
	}
	if hasContent(st, "images") && (want == "" || want == "images") {
		ids := make([]string, 0, len(s.volumes))
		for id, vol := range s.volumes {
			if strings.HasPrefix(id, st.ID+":") && (st.Shared || vol.node == node) {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			vol := s.volumes[id]
			if c.has("vmid") && c.vmid() != vol.vmid {
				continue
			}
			if s.checkVolumeAccess(c.who, 0, id, "") != nil {
				continue
			}
			out = append(out, map[string]any{"volid": id, "content": "images", "format": "raw", "size": vol.size, "vmid": vol.vmid})
		}
	}
	return out, nil
}

func (s *Sim) getContent(c *call) (any, *apiError) {
	volid, aerr := realVolumeID(c.get("storage"), c.get("volume"))
	if aerr != nil {
		return nil, aerr
	}
	if aerr := s.checkVolumeAccess(c.who, 0, volid, ""); aerr != nil {
		return nil, aerr
	}
	if vol := s.volumes[volid]; vol != nil {
		_, name, _ := strings.Cut(volid, ":")
		return map[string]any{"path": "/dev/pve/" + name, "format": "raw", "size": vol.size, "used": vol.size / 4}, nil
	}
	if path, err := s.snippetPath(c.get("node"), volid); err == nil {
		if info, err := os.Stat(path); err == nil {
			return map[string]any{"path": path, "format": "snippet", "size": info.Size(), "used": info.Size()}, nil
		}
	}
	return nil, die("volume_size_info on '%s' failed", volid)
}

// deleteContent removes a snippet file, or an unused disk image, in an
// 'imgdel' task (id "<owner vmid>@<storage>" for a VM's volume).
func (s *Sim) deleteContent(c *call) (any, *apiError) {
	volid, aerr := realVolumeID(c.get("storage"), c.get("volume"))
	if aerr != nil {
		return nil, aerr
	}
	sid, _, _ := strings.Cut(volid, ":")
	if _, ok := s.storages[sid]; !ok {
		return nil, die("storage '%s' does not exist", sid)
	}
	if err := s.access.check(c.who, "/storage/"+sid, "Datastore.Allocate"); err != nil {
		return nil, err
	}
	node := c.get("node")
	id := sid
	if vol := s.volumes[volid]; vol != nil {
		id = itoa(vol.vmid) + "@" + sid
	}
	return s.startTask(node, "imgdel", id, c.who, 0, func(t *task) error {
		if path, err := s.snippetPath(node, volid); err == nil {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("unlink '%s' failed - %v", path, err)
			}
			t.log = append(t.log, fmt.Sprintf("Removed volume '%s'", volid))
			return nil
		}
		if s.volumes[volid] == nil {
			return fmt.Errorf("volume '%s' does not exist", volid)
		}
		delete(s.volumes, volid)
		t.log = append(t.log, fmt.Sprintf("Removed volume '%s'", volid))
		return nil
	})
}

// poolMembers are a pool's existing VMs and its storages, of type typ (all
// when ""), as GET /pools lists them.
func (s *Sim) poolMembers(name, typ string) []map[string]any {
	p := s.access.Pools[name]
	out := []map[string]any{}
	if typ == "" || typ == "qemu" {
		ids := make([]int, 0, len(p.VMs))
		for id := range p.VMs {
			ids = append(ids, id)
		}
		sort.Ints(ids)
		for _, id := range ids {
			if v := s.vms[id]; v != nil {
				out = append(out, map[string]any{"id": fmt.Sprintf("qemu/%d", id), "type": "qemu", "vmid": id, "node": v.node, "name": v.conf["name"]})
			}
		}
	}
	if typ == "" || typ == "storage" {
		for _, st := range sortedKeys(p.Storages) {
			node := s.opts.Nodes[0].Name
			out = append(out, map[string]any{"id": "storage/" + node + "/" + st, "type": "storage", "storage": st, "node": node})
		}
	}
	return out
}
