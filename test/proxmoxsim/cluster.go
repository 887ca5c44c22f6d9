package proxmoxsim

import (
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
)

// The read-only endpoints bpg calls around its resources: the version, the
// cluster's VM list (how bpg finds a VM's node), pools, storage definitions
// and contents, and the node's network (how bpg finds the node's SSH
// address: the first interface with an address and a gateway).
func init() {
	handle("GET", `/version`, func(*Sim, []string, url.Values) (any, *apiError) {
		return map[string]any{"version": "8.3.2", "release": "8.3", "repoid": "3e76eec21c4a14a7"}, nil
	})
	handle("GET", `/cluster/resources`, func(s *Sim, _ []string, f url.Values) (any, *apiError) {
		if t := f.Get("type"); t != "" && t != "vm" {
			return []any{}, nil
		}
		out := []map[string]any{}
		for _, v := range s.sortedVMs() {
			out = append(out, map[string]any{
				"id": "qemu/" + strconv.Itoa(v.id), "type": "qemu", "node": s.opts.Node, "vmid": v.id,
				"name": v.conf["name"], "status": v.status(), "template": jsonValue("template", or(v.conf["template"], "0")),
				"maxmem": memoryMiB(v.conf) << 20,
			})
		}
		return out, nil
	})
	handle("GET", `/cluster/nextid`, func(s *Sim, _ []string, _ url.Values) (any, *apiError) {
		for id := MinVMID; ; id++ {
			if s.vms[id] == nil {
				return strconv.Itoa(id), nil
			}
		}
	})
	handle("GET", `/pools`, func(*Sim, []string, url.Values) (any, *apiError) { return []any{}, nil })
	handle("GET", `/storage/([^/]+)`, func(s *Sim, m []string, _ url.Values) (any, *apiError) {
		st, ok := s.storages()[m[1]]
		if !ok {
			return nil, die("storage '%s' does not exist", m[1])
		}
		return st, nil
	})
	handle("GET", `/nodes/([^/]+)/network`, func(s *Sim, _ []string, _ url.Values) (any, *apiError) {
		return []map[string]any{{
			"iface": "vmbr0", "type": "bridge", "active": 1, "autostart": 1, "method": "static",
			"address": s.opts.NodeAddress, "netmask": "255.0.0.0", "cidr": s.opts.NodeAddress + "/8",
			"gateway": "127.0.0.1", "bridge_ports": "eno1", "bridge_vlan_aware": 1, "priority": 3,
			"families": []string{"inet"},
		}}, nil
	})
	handle("GET", `/nodes/([^/]+)/storage/([^/]+)/status`, func(s *Sim, m []string, _ url.Values) (any, *apiError) {
		st, ok := s.storages()[m[2]]
		if !ok {
			return nil, die("storage '%s' does not exist", m[2])
		}
		return map[string]any{"storage": m[2], "type": st["type"], "content": st["content"], "active": 1, "enabled": 1,
			"shared": 0, "total": int64(1) << 40, "used": int64(1) << 30, "avail": int64(1)<<40 - int64(1)<<30}, nil
	})
	handle("GET", `/nodes/([^/]+)/storage/([^/]+)/content`, (*Sim).listContent)
	handle("GET", `/nodes/([^/]+)/storage/([^/]+)/content/(.+)`, (*Sim).getContent)
	handle("DELETE", `/nodes/([^/]+)/storage/([^/]+)/content/(.+)`, (*Sim).deleteContent)
}

// storages are the node's two default storages as a fresh PVE install
// defines them (pve-manager's default storage.cfg): "local", a directory at
// /var/lib/vz (here Options.Dir/local) with the snippets content type
// enabled as the README asks, and "local-lvm", LVM-thin for disk images.
func (s *Sim) storages() map[string]map[string]any {
	return map[string]map[string]any{
		"local":     {"storage": "local", "type": "dir", "path": s.opts.Dir + "/local", "content": "backup,iso,snippets,vztmpl", "shared": 0, "digest": "0a1b2c"},
		"local-lvm": {"storage": "local-lvm", "type": "lvmthin", "thinpool": "data", "vgname": "pve", "content": "images,rootdir", "shared": 0, "digest": "0a1b2c"},
	}
}

func (s *Sim) listContent(m []string, f url.Values) (any, *apiError) {
	if _, ok := s.storages()[m[2]]; !ok {
		return nil, die("storage '%s' does not exist", m[2])
	}
	want := f.Get("content")
	out := []map[string]any{}
	switch m[2] {
	case "local":
		if want != "" && want != "snippets" {
			return out, nil
		}
		entries, _ := os.ReadDir(s.SnippetsDir())
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue
			}
			out = append(out, map[string]any{"volid": "local:snippets/" + e.Name(), "content": "snippets", "format": "snippet",
				"size": info.Size(), "ctime": info.ModTime().Unix()})
		}
	case imageStorage:
		if want != "" && want != "images" {
			return out, nil
		}
		ids := make([]string, 0, len(s.volumes))
		for id := range s.volumes {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			vol := s.volumes[id]
			out = append(out, map[string]any{"volid": id, "content": "images", "format": "raw", "size": vol.size, "vmid": vol.vmid})
		}
	}
	return out, nil
}

func (s *Sim) getContent(m []string, _ url.Values) (any, *apiError) {
	volid := m[3]
	if !strings.Contains(volid, ":") {
		volid = m[2] + ":" + volid
	}
	if vol := s.volumes[volid]; vol != nil {
		_, name, _ := strings.Cut(volid, ":")
		return map[string]any{"path": "/dev/pve/" + name, "format": "raw", "size": vol.size, "used": vol.size / 4}, nil
	}
	if path, err := s.snippetPath(volid); err == nil {
		if info, err := os.Stat(path); err == nil {
			return map[string]any{"path": path, "format": "snippet", "size": info.Size(), "used": info.Size()}, nil
		}
	}
	return nil, die("volume '%s' does not exist", volid)
}

// deleteContent is pve-storage's content DELETE: a snippet file is removed
// from the folder; a VM disk in use is refused.
func (s *Sim) deleteContent(m []string, _ url.Values) (any, *apiError) {
	volid := m[3]
	if path, err := s.snippetPath(volid); err == nil {
		if err := os.Remove(path); err != nil {
			return nil, die("volume '%s' does not exist", volid)
		}
		return nil, nil
	}
	if vol := s.volumes[volid]; vol != nil {
		if s.vms[vol.vmid] != nil {
			return nil, die("unable to delete '%s' - volume is still in use (referenced by VM %d)", volid, vol.vmid)
		}
		delete(s.volumes, volid)
		return nil, nil
	}
	return nil, die("volume '%s' does not exist", volid)
}
