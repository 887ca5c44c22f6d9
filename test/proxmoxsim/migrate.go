package proxmoxsim

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

func init() {
	handle("POST", "/nodes/{node}/qemu/{vmid}/migrate", func(s *Sim, c *call) (any, *apiError) {
		v, aerr := s.vmOn(c)
		if aerr != nil {
			return nil, aerr
		}
		return s.migrate(v, c.get("target"), c.get("online") == "1", c.get("with-local-disks") == "1", c.who)
	})
}

// Migrate moves VM id to node target as HA or `qm migrate <id> <target>
// --online --with-local-disks` run by root do: the same rules and task as
// the API's migrate.
func (s *Sim) Migrate(id int, target string) error {
	s.mu.Lock()
	v := s.vms[id]
	if v == nil {
		s.mu.Unlock()
		return fmt.Errorf("VM %d does not exist", id)
	}
	upid, aerr := s.migrate(v, target, v.running, true, "root@pam")
	s.mu.Unlock()
	if aerr != nil {
		return fmt.Errorf("%d %s", aerr.code, aerr.msg)
	}
	return s.waitTask(upid)
}

// migrate follows qemu-server's migrate_vm and PVE::QemuMigrate
// (src/PVE/QemuMigrate.pm @096a1ac2): the target must be another node of
// the cluster; a running VM needs online ("can't migrate running VM without
// --online", prepare); each volume's storage must be available on the
// target with the volume's content type (target_storage_check_available);
// volumes on storages that are not shared are copied (scan_local_volumes:
// an attached one of a running VM only with with-local-disks, "can't live
// migrate attached local disks without with-local-disks option"; a VM's
// cloud-init drive is "generated" and copied offline). Only drives and
// snapshots are volumes (PVE::QemuServer::foreach_volid): a cicustom
// snippet on a node's own storage stays behind, and the VM's next cold
// start on the target cannot read it (coldStart). The config moves with
// the VM, in a qmigrate task on the source node.
func (s *Sim) migrate(v *vm, target string, online, withLocalDisks bool, who string) (string, *apiError) {
	// migrate_vm (qemu-server PVE/API2/Qemu.pm; the copy the search tools
	// hold names no commit): raise_param_exc, then check_node_exists.
	if target == v.node {
		return "", paramError(map[string]string{"target": "target is local node."})
	}
	if !s.hasNode(target) {
		return "", die("no such cluster node '%s'", target)
	}
	if aerr := v.checkLock(); aerr != nil {
		return "", aerr
	}
	if v.running && !online {
		return "", die("can't migrate running VM without --online")
	}
	var local []*volume
	var problems []string
	for _, opt := range sortedKeys(v.conf) {
		if !isDrive(opt) {
			continue
		}
		p, _ := parseProps(opt, v.conf[opt])
		vol := s.volumes[p.def]
		if vol == nil {
			continue
		}
		sid, _, _ := strings.Cut(p.def, ":")
		st := s.storages[sid]
		if st.Shared {
			continue
		}
		if v.running && !isCloudInit(p.def) && !withLocalDisks {
			problems = append(problems, fmt.Sprintf("can't migrate local disk '%s': can't live migrate attached local disks without with-local-disks option", p.def))
		}
		local = append(local, vol)
	}
	source := v.node
	v.lock = "migrate"
	return s.startTask(source, "qmigrate", itoa(v.id), who, s.opts.TaskTime, func(t *task) error {
		v.lock = ""
		if len(problems) > 0 {
			sort.Strings(problems)
			t.log = append(t.log, problems...)
			return fmt.Errorf("Problem found while scanning volumes - can't migrate VM - check log")
		}
		for _, vol := range local {
			vol.node = target
		}
		v.node = target
		t.log = append(t.log, "migration finished successfully (duration 00:00:01)")
		return nil
	})
}

func (s *Sim) hasNode(name string) bool {
	for _, n := range s.opts.Nodes {
		if n.Name == name {
			return true
		}
	}
	return false
}

// waitTask waits for task upid to end and returns its failure, if any.
func (s *Sim) waitTask(upid string) error {
	for {
		s.mu.Lock()
		t := s.tasks[upid]
		done, exit := t.done, t.exit
		s.mu.Unlock()
		if done {
			if exit != "OK" && !strings.HasPrefix(exit, "WARNINGS") {
				return fmt.Errorf("task %s: %s", upid, exit)
			}
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StopVM stops VM id as `qm stop <id>` run by root does (HA's recovery, an
// operator's maintenance): QEMU quits at once.
func (s *Sim) StopVM(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vms[id]
	if v == nil || !v.running {
		return fmt.Errorf("VM %d is not running", id)
	}
	s.halt(v)
	return nil
}
