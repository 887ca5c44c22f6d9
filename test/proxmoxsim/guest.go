package proxmoxsim

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func init() {
	handle("GET", "/nodes/{node}/qemu/{vmid}/status/current", (*Sim).statusCurrent)
	for _, action := range []string{"start", "stop", "shutdown", "reboot"} {
		action := action
		handle("POST", "/nodes/{node}/qemu/{vmid}/status/"+action, func(s *Sim, c *call) (any, *apiError) {
			return s.power(c, action)
		})
	}
	handle("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces", (*Sim).agentInterfaces)
	handle("POST", "/nodes/{node}/qemu/{vmid}/agent/ping", func(s *Sim, c *call) (any, *apiError) {
		v, aerr := s.vmOn(c)
		if aerr != nil {
			return nil, aerr
		}
		return nil, v.agentReady()
	})
}

func (v *vm) status() string {
	if v.running {
		return "running"
	}
	return "stopped"
}

func (s *Sim) statusCurrent(c *call) (any, *apiError) {
	v, aerr := s.vmOn(c)
	if aerr != nil {
		return nil, aerr
	}
	st := map[string]any{
		"vmid": v.id, "name": v.conf["name"], "status": v.status(), "qmpstatus": v.status(),
		"cpus": s.jsonValue("cores", or(v.conf["cores"], "1")), "maxmem": memoryMiB(v.conf) << 20,
		"agent": s.jsonValue("onboot", agentFlag(v.conf)),
	}
	if v.running {
		st["pid"] = 10000 + v.id
		st["uptime"] = int(time.Since(v.bootStart()).Seconds())
	}
	if v.lock != "" {
		st["lock"] = v.lock
	}
	if t := v.conf["tags"]; t != "" {
		st["tags"] = t
	}
	return st, nil
}

func (v *vm) bootStart() time.Time {
	if v.bootedAt.IsZero() {
		return time.Now()
	}
	return v.bootedAt
}

func agentFlag(conf map[string]string) string {
	p, _ := parseProps("agent", conf["agent"])
	if p.def == "1" || p.keys["enabled"] == "1" {
		return "1"
	}
	return "0"
}

func memoryMiB(conf map[string]string) int64 {
	p, _ := parseProps("memory", or(conf["memory"], "512"))
	n, _ := strconv.ParseInt(p.def, 10, 64)
	return n
}

// power runs a power action as a task (qemu-server's vm_start, vm_stop,
// vm_shutdown, vm_reboot API methods; the stopping follows vm_stop in
// qemu-server PVE/QemuServer.pm at 9d66b39769801e78510dbd4615088cb4f6d61636):
//   - a stop quits QEMU at once;
//   - a shutdown asks the guest (through its agent, or the ACPI power
//     button) and waits up to its timeout (default 60 s): a guest that does
//     not stop fails the task "VM quit/powerdown failed - got timeout",
//     unless forceStop, which then stops it;
//   - a reboot is such a shutdown (no force) followed by a start, so a
//     hung guest's reboot fails after the timeout, the VM keeps running and
//     its pending changes stay pending;
//   - a clean stop applies the pending changes (vm_stop_cleanup), a start
//     applies them first (vm_start_nolock).
func (s *Sim) power(c *call, action string) (any, *apiError) {
	v, aerr := s.vmOn(c)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := v.checkLock(); aerr != nil {
		return nil, aerr
	}
	v.writes++
	node, id := v.node, itoa(v.id)
	switch action {
	case "start":
		if v.isTemplate() {
			return nil, die("you can't start a vm if it's a template")
		}
		if v.running {
			return nil, die("VM %d already running", v.id)
		}
		return s.startTask(node, "qmstart", id, c.who, s.opts.TaskTime, func(t *task) error { return s.coldStart(t, v) })
	case "stop":
		return s.startTask(node, "qmstop", id, c.who, 0, func(*task) error { s.halt(v); return nil })
	}
	if !v.running {
		return nil, die("VM %d not running", v.id)
	}
	timeout := time.Duration(atoiOr(c.get("timeout"), 60)) * time.Second
	wait := s.opts.TaskTime
	if !v.guestUp() {
		// Nothing in the guest acts on the request: the full timeout.
		wait = timeout
	}
	force := action == "shutdown" && c.get("forceStop") == "1"
	typ := "qm" + action
	return s.startTask(node, typ, id, c.who, wait, func(t *task) error {
		if !v.guestUp() {
			if !force {
				return fmt.Errorf("VM quit/powerdown failed - got timeout")
			}
			t.warn("VM still running - terminating now with SIGTERM")
		}
		s.halt(v)
		if action == "reboot" {
			return s.coldStart(t, v)
		}
		return nil
	})
}

// halt stops the VM; the pending changes are applied (vm_stop_cleanup).
func (s *Sim) halt(v *vm) {
	v.running = false
	v.bootedAt = time.Time{}
	s.applyPending(v)
}

// coldStart is vm_start_nolock: the pending changes are applied, the
// cloud-init drive is generated (PVE::QemuServer::Cloudinit, which reads
// every cicustom snippet: a missing one fails the start), then QEMU runs
// and the firmware boots the first device of the boot order that holds an
// OS.
//
// QEMU maps the guest's memory when it starts; a node whose kernel will not
// map that much (Node.MemoryMiB) makes it exit (QEMU system/physmem.c
// ram_block_add: "cannot set up guest memory '<region>': <errno>", the
// region of -m being pc.ram, printed by the kvm binary as "kvm: ..."), and
// vm_start_nolock (qemu-server src/PVE/QemuServer.pm at
// dab637268eb2944128a6ecff219ffebd571b0968) runs QEMU with noerr, so its
// stderr lands in the task log, then dies "QEMU exited with code <n>",
// which the start wraps in "start failed: ". The VM stays stopped, its
// pending changes applied.
func (s *Sim) coldStart(t *task, v *vm) error {
	s.applyPending(v)
	ci, err := s.cloudInit(v)
	if err != nil {
		return err
	}
	if limit := s.nodeMemory(v.node); limit > 0 && memoryMiB(v.conf) > limit {
		t.print("kvm: cannot set up guest memory 'pc.ram': Cannot allocate memory")
		return fmt.Errorf("start failed: QEMU exited with code 1")
	}
	v.running = true
	v.starts++
	b := Boot{Network: ci.net, UserData: ci.user, MemoryMiB: memoryMiB(v.conf)}
	b.Cores, _ = strconv.ParseInt(or(v.conf["cores"], "1"), 10, 64)
	b.Device, b.Problem = s.bootDevice(v)
	v.bootedAt = time.Time{}
	if b.Device != "" {
		v.bootedAt = time.Now().Add(s.opts.BootTime)
	}
	v.boot = b
	v.boot.Addresses = s.addresses(v)
	s.opts.Logf("proxmoxsim: VM %d started on %s: boot %q %s", v.id, v.node, b.Device, b.Problem)
	return nil
}

type cloudInitDrive struct {
	user string
	net  CloudInitNetwork
}

// cloudInit generates the VM's cloud-init drive as qemu-server's
// Cloudinit.pm does for citype nocloud: user-data from the cicustom 'user'
// snippet (read_cloudinit_snippets_file: the volume must be of type
// snippets; file_get_contents dies when it cannot open it) read on the
// VM's node, network-config from ipconfig0, nameservers from 'nameserver'
// or, when the VM sets none, the node's own resolv.conf (get_dns_conf).
func (s *Sim) cloudInit(v *vm) (cloudInitDrive, error) {
	var d cloudInitDrive
	hasDrive := false
	for opt, val := range v.conf {
		if isDrive(opt) {
			p, _ := parseProps(opt, val)
			hasDrive = hasDrive || isCloudInit(p.def)
		}
	}
	if !hasDrive {
		return d, nil
	}
	cc, _ := parseProps("cicustom", v.conf["cicustom"])
	for _, kind := range []string{"user", "network", "meta", "vendor"} {
		volid := cc.keys[kind]
		if volid == "" {
			continue
		}
		path, err := s.snippetPath(v.node, volid)
		if err != nil {
			return d, err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return d, fmt.Errorf("can't open '%s' - No such file or directory", s.nodeView(v.node, path))
		}
		if kind == "user" {
			d.user = string(b)
		}
	}
	ipc, _ := parseProps("ipconfig0", v.conf["ipconfig0"])
	d.net.IP, d.net.Gateway = ipc.keys["ip"], ipc.keys["gw"]
	if ns := v.conf["nameserver"]; ns != "" {
		d.net.Nameservers = strings.Fields(ns)
	} else {
		d.net.Nameservers = append([]string(nil), s.opts.HostDNS...)
	}
	if sd := v.conf["searchdomain"]; sd != "" {
		d.net.Search = strings.Fields(sd)
	}
	return d, nil
}

// snippetPath maps a snippet volume to node's file (pve-storage
// PVE::Storage::Plugin::parse_volname: <storage>:snippets/<name> on a
// directory storage is <path>/snippets/<name>).
func (s *Sim) snippetPath(node, volid string) (string, error) {
	storage, rest, ok := strings.Cut(volid, ":")
	if !ok {
		return "", fmt.Errorf("unable to parse volume ID '%s'", volid)
	}
	st, ok := s.storages[storage]
	if !ok {
		return "", fmt.Errorf("storage '%s' does not exist", storage)
	}
	if st.Type != "dir" || !hasContent(st, "snippets") {
		return "", fmt.Errorf("storage '%s' does not support content type 'snippets'", storage)
	}
	name, ok := strings.CutPrefix(rest, "snippets/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("%s is not in the snippets directory", volid)
	}
	return filepath.Join(s.SnippetsDirOf(node, storage), name), nil
}

// nodeView is path as the node sees it (under StoragePath).
func (s *Sim) nodeView(node, path string) string {
	for id := range s.storages {
		if rel, err := filepath.Rel(s.StorageDir(node, id), path); err == nil && !strings.HasPrefix(rel, "..") {
			return filepath.Join(s.StoragePath(id), rel)
		}
	}
	return path
}

// addresses is the guest's IPv4 address on net0: the static one cloud-init
// configured at boot, or a lease from the DHCP server on the NIC's bridge
// and VLAN (also without ipconfig0: cloud-init's fallback configuration is
// DHCP on the first NIC). A DHCP client keeps asking, so a NIC moved (hot-plugged) onto a
// segment with a DHCP server gets a lease without a reboot.
func (s *Sim) addresses(v *vm) []string {
	if v.bootedAt.IsZero() {
		return nil
	}
	ip := v.boot.Network.IP
	if ip != "" && ip != "dhcp" {
		addr, _, _ := strings.Cut(ip, "/")
		return []string{addr}
	}
	net0, _ := parseProps("net0", v.conf["net0"])
	pool, ok := s.opts.DHCP[bridgeKey(net0)]
	if !ok {
		return nil
	}
	pfx, err := netip.ParsePrefix(pool)
	if err != nil {
		return nil
	}
	a := pfx.Addr().As4()
	a[3] = byte(100 + v.id%100)
	return []string{netip.AddrFrom4(a).String()}
}

func (v *vm) agentReady() *apiError {
	if !v.running {
		return die("VM %d is not running", v.id)
	}
	if agentFlag(v.conf) != "1" {
		return die("No QEMU guest agent configured")
	}
	if !v.guestUp() {
		// PVE::QemuServer::Agent agent_available: the guest-ping fails.
		return die("QEMU guest agent is not running")
	}
	return nil
}

// agentInterfaces answers the guest agent's network-get-interfaces: lo and
// eth0 with net0's MAC and the guest's addresses.
func (s *Sim) agentInterfaces(c *call) (any, *apiError) {
	v, aerr := s.vmOn(c)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := v.agentReady(); aerr != nil {
		return nil, aerr
	}
	if len(v.boot.Addresses) == 0 {
		v.boot.Addresses = s.addresses(v)
	}
	net0, _ := parseProps("net0", v.conf["net0"])
	eth0 := []map[string]any{{"ip-address": "fe80::be24:11ff:fe00:1", "ip-address-type": "ipv6", "prefix": 64}}
	for _, a := range v.boot.Addresses {
		eth0 = append([]map[string]any{{"ip-address": a, "ip-address-type": "ipv4", "prefix": 24}}, eth0...)
	}
	return map[string]any{"result": []map[string]any{
		{"name": "lo", "hardware-address": "00:00:00:00:00:00", "ip-addresses": []map[string]any{
			{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
			{"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128},
		}},
		{"name": "eth0", "hardware-address": lowerMAC(net0.keys["macaddr"]), "ip-addresses": eth0},
	}}, nil
}

func atoiOr(s string, d int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return d
}
