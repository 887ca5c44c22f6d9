package proxmoxsim

import (
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func init() {
	handle("GET", `/nodes/([^/]+)/qemu/(\d+)/status/current`, (*Sim).statusCurrent)
	handle("POST", `/nodes/([^/]+)/qemu/(\d+)/status/(start|stop|shutdown|reboot)`, (*Sim).power)
	handle("GET", `/nodes/([^/]+)/qemu/(\d+)/agent/network-get-interfaces`, (*Sim).agentInterfaces)
	handle("POST", `/nodes/([^/]+)/qemu/(\d+)/agent/ping`, func(s *Sim, m []string, _ url.Values) (any, *apiError) {
		v, aerr := s.getVM(m[2])
		if aerr != nil {
			return nil, aerr
		}
		return nil, v.agentReady()
	})
}

func (s *Sim) statusCurrent(m []string, _ url.Values) (any, *apiError) {
	v, aerr := s.getVM(m[2])
	if aerr != nil {
		return nil, aerr
	}
	st := map[string]any{
		"vmid": v.id, "name": v.conf["name"], "status": v.status(), "qmpstatus": v.status(),
		"cpus": jsonValue("cores", or(v.conf["cores"], "1")), "maxmem": memoryMiB(v.conf) << 20,
		"agent": jsonValue("onboot", agentFlag(v.conf)),
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

// power runs a power action as a task (PVE::API2::Qemu vm_start,
// vm_stop, vm_shutdown, vm_reboot).
func (s *Sim) power(m []string, f url.Values) (any, *apiError) {
	v, aerr := s.getVM(m[2])
	if aerr != nil {
		return nil, aerr
	}
	if aerr := v.checkLock(); aerr != nil {
		return nil, aerr
	}
	if v.isTemplate() && m[3] == "start" {
		return nil, die("you can't start a vm if it's a template")
	}
	v.writes++
	switch m[3] {
	case "start":
		if v.running {
			return nil, die("VM %d already running", v.id)
		}
		return s.startTask("qmstart", m[2], s.opts.TaskTime, func() error { return s.coldStart(v) })
	case "stop":
		return s.startTask("qmstop", m[2], 0, func() error { v.halt(); return nil })
	case "shutdown", "reboot":
		if !v.running {
			return nil, die("VM %d not running", v.id)
		}
		// A guest that never booted has no OS to act on the ACPI power
		// button, so vm_shutdown waits for the full timeout and only then
		// force-stops (forceStop) or fails (qemu-server vm_stop with
		// shutdown=1: "VM quit/powerdown failed - got timeout").
		wait := s.opts.TaskTime
		timeout := time.Duration(atoiOr(f.Get("timeout"), 600)) * time.Second
		if !v.guestUp() {
			wait = timeout
		}
		force := f.Get("forceStop") == "1" || m[3] == "reboot"
		reboot := m[3] == "reboot"
		return s.startTask("qm"+m[3], m[2], wait, func() error {
			if !v.guestUp() && !force {
				return fmt.Errorf("VM quit/powerdown failed - got timeout")
			}
			v.halt()
			if reboot {
				return s.coldStart(v)
			}
			return nil
		})
	}
	return nil, die("unknown power action")
}

func (v *vm) halt() {
	v.running = false
	v.bootedAt = time.Time{}
}

// coldStart is vm_start: the cloud-init drive is generated first
// (PVE::QemuServer::Cloudinit generate_cloudinit_config, which reads every
// cicustom snippet: a missing one fails the start), then QEMU runs and the
// firmware boots the first device of the boot order that holds an OS.
func (s *Sim) coldStart(v *vm) error {
	ci, err := s.cloudInit(v)
	if err != nil {
		return err
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
	s.opts.Logf("proxmoxsim: VM %d started: boot %q %s", v.id, b.Device, b.Problem)
	return nil
}

type cloudInitDrive struct {
	user string
	net  CloudInitNetwork
}

// cloudInit generates the VM's cloud-init drive as qemu-server's
// Cloudinit.pm does for citype nocloud: user-data from the cicustom 'user'
// snippet (read_cloudinit_snippets_file: the volume must be of type
// snippets; file_get_contents dies when it cannot open it), network-config
// from ipconfig0, nameservers from 'nameserver' or, when the VM sets none,
// the node's own resolv.conf (get_dns_conf).
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
		path, err := s.snippetPath(volid)
		if err != nil {
			return d, err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return d, fmt.Errorf("can't open '%s' - No such file or directory", path)
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

// snippetPath maps a snippet volume to its file (pve-storage
// PVE::Storage::Plugin::parse_volname: <storage>:snippets/<name> on a
// directory storage is <path>/snippets/<name>).
func (s *Sim) snippetPath(volid string) (string, error) {
	storage, rest, ok := strings.Cut(volid, ":")
	if !ok {
		return "", fmt.Errorf("unable to parse volume ID '%s'", volid)
	}
	if storage != "local" {
		return "", fmt.Errorf("storage '%s' does not support content type 'snippets'", storage)
	}
	name, ok := strings.CutPrefix(rest, "snippets/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("%s is not in the snippets directory", volid)
	}
	return filepath.Join(s.SnippetsDir(), name), nil
}

// bootDevice picks what the firmware boots: the devices of 'boot:
// order=a;b;c', or, without one, Proxmox's default order (qemu-server
// get_default_bootdevices: the first hard disk, then the first CD-ROM,
// then the NICs, disks ranked by PVE::QemuServer::Drive::valid_drive_names:
// ide, scsi, virtio, sata). The first that holds an OS boots. A NIC boots
// nothing here (no PXE server), nor does an empty disk or a CD-ROM without
// an OS.
func (s *Sim) bootDevice(v *vm) (string, string) {
	var order []string
	if b := v.conf["boot"]; b != "" {
		p, _ := parseProps("boot", b)
		if o := p.keys["order"]; o != "" {
			order = strings.Split(o, ";")
		}
	}
	if order == nil {
		order = defaultBootOrder(v.conf)
	}
	for _, dev := range order {
		val, ok := v.conf[dev]
		if !ok || !isDrive(dev) {
			continue
		}
		p, _ := parseProps(dev, val)
		if vol := s.volumes[p.def]; vol != nil && vol.os {
			return dev, ""
		}
	}
	return "", fmt.Sprintf("no bootable disk (boot order %s)", strings.Join(order, ";"))
}

func defaultBootOrder(conf map[string]string) []string {
	var disk, cdrom string
	for _, bus := range []struct {
		prefix string
		n      int
	}{{"ide", 4}, {"scsi", 31}, {"virtio", 16}, {"sata", 6}} {
		for i := 0; i < bus.n; i++ {
			name := bus.prefix + strconv.Itoa(i)
			val, ok := conf[name]
			if !ok {
				continue
			}
			p, _ := parseProps(name, val)
			isCD := p.keys["media"] == "cdrom"
			if isCD && cdrom == "" {
				cdrom = name
			}
			if !isCD && disk == "" {
				disk = name
			}
		}
	}
	var order []string
	for _, d := range []string{disk, cdrom} {
		if d != "" {
			order = append(order, d)
		}
	}
	for i := 0; i < 32; i++ {
		if _, ok := conf["net"+strconv.Itoa(i)]; ok {
			order = append(order, "net"+strconv.Itoa(i))
		}
	}
	return order
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
	p, err := netip.ParsePrefix(pool)
	if err != nil {
		return nil
	}
	a := p.Addr().As4()
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
func (s *Sim) agentInterfaces(m []string, _ url.Values) (any, *apiError) {
	v, aerr := s.getVM(m[2])
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
