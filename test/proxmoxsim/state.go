package proxmoxsim

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Requests returns every API call so far.
func (s *Sim) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// RequestLog is the last n calls, one a line, for a failure message.
func (s *Sim) RequestLog(n int) string {
	rs := s.Requests()
	if len(rs) > n {
		rs = rs[len(rs)-n:]
	}
	out := ""
	for _, r := range rs {
		out += r.String() + "\n"
	}
	return out
}

// ConfigWrites counts the calls that changed VM id's state (config updates,
// resizes, clones into it, power actions): zero between two reconciles
// means the provider found nothing to change.
func (s *Sim) ConfigWrites(id int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.vms[id]; v != nil {
		return v.writes
	}
	return 0
}

// VMIDs lists the VMs that exist, templates included, sorted.
func (s *Sim) VMIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]int, 0, len(s.vms))
	for id := range s.vms {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// VM returns what is known about VM id, or false when it does not exist.
func (s *Sim) VM(id int) (VMState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vms[id]
	if v == nil {
		return VMState{}, false
	}
	return v.state(s), true
}

// VMState is a snapshot of one VM for tests.
type VMState struct {
	ID   int
	Node string
	// Config is the VM's config with its pending changes applied (what
	// GET .../config answers); Pending lists the changes not applied yet.
	Config  map[string]string
	Pending map[string]string
	Status  string // running or stopped
	Lock    string
	// Disks maps each disk option to its volume's size in bytes.
	Disks map[string]int64
	// Boot is the last cold start: what the guest booted and read.
	Boot Boot
	// Starts counts cold starts (a reboot is one).
	Starts int
	// Clones counts the clones that made this VM (more than one would be a
	// second VM under the same id).
	Clones int
}

// Boot is what a cold start did.
type Boot struct {
	// Device is the boot device the guest booted from ("" when none).
	Device string
	// Problem is why nothing booted, e.g. "no bootable disk".
	Problem string
	// UserData is the cicustom user snippet as read at this start.
	UserData string
	// Network is the network configuration cloud-init was given.
	Network CloudInitNetwork
	// Booted is true once the guest's OS runs (and its agent may answer).
	Booted bool
	// Addresses are the guest's IPv4 addresses once booted.
	Addresses []string
	// Cores and MemoryMiB are what the guest runs with.
	Cores, MemoryMiB int64
}

// CloudInitNetwork is the part of the cloud-init drive's network-config the
// tests look at (qemu-server PVE::QemuServer::Cloudinit nocloud_network).
type CloudInitNetwork struct {
	IP, Gateway string // ip is "dhcp" or address/prefix
	Nameservers []string
	Search      []string
}

// HaltGuest makes VM id's guest hang as a kernel panic would: it keeps
// running but answers neither its agent nor the ACPI power button (so a
// shutdown waits for its timeout), until its next cold start.
func (s *Sim) HaltGuest(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vms[id]
	if v == nil || !v.running {
		return fmt.Errorf("VM %d is not running", id)
	}
	v.bootedAt = time.Time{}
	v.boot.Problem = "guest halted"
	return nil
}

// Refusals counts the API calls answered with an error containing msg.
func (s *Sim) Refusals(msg string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Status != 200 && strings.Contains(r.Error, msg) {
			n++
		}
	}
	return n
}

// Deny takes privilege on aclPath away from every API token, the way an
// administrator does in PVE, which has no negative ACL entry: a role
// holding what the token has there but that privilege, set on that exact
// path in place of the token's own entries there, replaces what the path
// inherits (AccessControl.pm roles(): the most specific path's ACL entries
// for a user override those above it, and the entries of one path add up,
// so an entry granting the privilege on that very path, such as a role
// with VM.Clone on /vms/<template>, is set aside too).
// Every call needing the privilege there is then refused as PVE refuses
// it, with "Permission check failed (<aclPath>, <privilege>)", and every
// other call is unaffected. A pool's roles still add to its member VMs'
// (RPCEnvironment permissions()): deny on /pool/<pool> for those. The
// returned function removes the entries and roles again and puts back
// those set aside.
func (s *Sim) Deny(aclPath, privilege string) (grant func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.access
	path, ok := normalizePath(aclPath)
	if !ok {
		panic("proxmoxsim: Deny: invalid ACL path " + aclPath)
	}
	s.denies++
	prefix := fmt.Sprintf("Deny%d-", s.denies)
	var aside, added []ACLEntry
	for i, tok := range a.Tokens() {
		who := tok
		if user, name, _ := strings.Cut(tok, "!"); !a.Users[user].Tokens[name].Privsep {
			who = user // such a token has its user's privileges
		}
		privs := map[string]bool{}
		for p := range a.Permissions(who, path) {
			if p != privilege {
				privs[p] = true
			}
		}
		role := fmt.Sprintf("%s%d", prefix, i)
		a.Roles[role] = privs
		added = append(added, ACLEntry{Who: who, Role: role, Propagate: true})
	}
	var kept []ACLEntry
	for _, e := range a.ACL[path] {
		own := false
		for _, n := range added {
			own = own || e.Who == n.Who
		}
		if own {
			aside = append(aside, e)
			continue
		}
		kept = append(kept, e)
	}
	a.ACL[path] = append(kept, added...)
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		var kept []ACLEntry
		for _, e := range a.ACL[path] {
			if strings.HasPrefix(e.Role, prefix) {
				delete(a.Roles, e.Role)
				continue
			}
			kept = append(kept, e)
		}
		a.ACL[path] = append(kept, aside...)
		aside = nil
	}
}

// HandMadeVM makes VM id on node as someone with root does in the web UI
// (a full clone of template, started), in no pool, with description: a VM
// no claim made. Its config changes are counted by ConfigWrites from then
// on.
func (s *Sim) HandMadeVM(id, template int, node, description string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.vms[template]
	if t == nil || !t.isTemplate() {
		return fmt.Errorf("VM %d is not a template", template)
	}
	if s.vms[id] != nil {
		return fmt.Errorf("VM %d already exists", id)
	}
	v := newVM(id, node)
	for k, val := range t.conf {
		v.conf[k] = val
	}
	delete(v.conf, "template")
	// Its own disks, as a full clone has.
	for k, val := range v.conf {
		volid, rest, _ := strings.Cut(val, ",")
		old := s.volumes[volid]
		if old == nil {
			continue
		}
		nv := *old
		nv.vmid, nv.node = id, node
		nv.id = strings.Replace(strings.Replace(volid, fmt.Sprintf("base-%d-", template), fmt.Sprintf("vm-%d-", id), 1), fmt.Sprintf("vm-%d-", template), fmt.Sprintf("vm-%d-", id), 1)
		s.volumes[nv.id] = &nv
		v.conf[k] = nv.id
		if rest != "" {
			v.conf[k] += "," + rest
		}
	}
	v.conf["name"] = fmt.Sprintf("hand-made-%d", id)
	v.conf["description"] = description
	v.running = true
	s.vms[id] = v
	return nil
}

// Pveum runs one pveum command on the running cluster, as an administrator
// does on a node (e.g. "role", "modify", "HomelabVM", "--privs", "...").
func (s *Sim) Pveum(args ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.access.Pveum(s.api, args...)
}
