//go:build vm

package vm

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Guest-side addresses of QEMU user networking (slirp): the guest's own
// address, its gateway and DNS (which restrict=on leaves unanswered), and
// the address the git server is forwarded to.
const (
	guestIP      = "10.0.2.15"
	guestCIDR    = "10.0.2.0/24"
	guestGateway = "10.0.2.2"
	guestDNS     = "10.0.2.3"
	gitAddr      = "10.0.2.100"
	gitPort      = 80
	// standinBoot is the image's boot loader stand-in (hack/vm-image.sh).
	standinBoot = "/usr/lib/homelab-standin/boot"
)

// guest is one VM whose disk survives across boots, as a Proxmox VM's does.
type guest struct {
	dir    string // logs and the per-test disk
	disk   string // qcow2 overlay on the cached image: the cache is never written
	kernel string
	initrd string
	seed   string // the NoCloud ISO, attached read-only like Proxmox's cloud-init drive
	mac    string
	// forwards maps a guest address (10.0.2.100:80) to a port on host
	// loopback: the only places the guest can reach.
	forwards map[string]int
}

// bootOptions says how one boot differs from the others.
type bootOptions struct {
	name    string
	cmdline []string          // extra kernel arguments
	creds   map[string][]byte // systemd system credentials (SMBIOS type 11)
	timeout time.Duration
}

// bootResult is what one boot left behind.
type bootResult struct {
	console string // the serial console (ttyS0): kernel, systemd, cloud-init
	report  string // the probe's report (ttyS1)
	took    time.Duration
	// cpu is the host CPU time QEMU used (its vCPU threads and its own):
	// against took, how many of the host's cores one guest keeps busy.
	cpu  time.Duration
	err  error // QEMU's exit, or the time limit
	pgid int
}

// newGuest makes a fresh overlay disk on image.
func newGuest(dir string, img image, seed, mac string, forwards map[string]int) (*guest, error) {
	disk := filepath.Join(dir, "disk.qcow2")
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", img.disk, disk).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("cannot create the guest's overlay disk: %w: %s", err, out)
	}
	return &guest{dir: dir, disk: disk, kernel: img.kernel, initrd: img.initrd, seed: seed, mac: mac, forwards: forwards}, nil
}

// args is QEMU's command line for one boot.
func (g *guest) args(o bootOptions, console, report string) []string {
	netdev := "user,id=net0,restrict=on"
	addrs := make([]string, 0, len(g.forwards))
	for a := range g.forwards {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	for _, a := range addrs {
		// A plain guestfwd to a TCP address carries one connection and then
		// hangs; socat per connection carries any number.
		netdev += fmt.Sprintf(",guestfwd=tcp:%s-cmd:socat - TCP:127.0.0.1:%d", a, g.forwards[a])
	}
	cmdline := append([]string{
		"root=LABEL=root", "rw", "console=ttyS0,115200", "loglevel=4",
		// The boot loader stand-in (hack/vm-image.sh): it runs the boot
		// default's stage-2 init, which activates that system and starts
		// systemd, as a NixOS boot entry's init= does.
		"init=" + standinBoot,
		// A kernel panic (no root disk, say) reboots at once, and -no-reboot
		// makes that QEMU's exit instead of a hang until the time limit.
		"panic=-1",
	}, o.cmdline...)
	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		// KVM exists here but hangs guests: software emulation only. Two
		// vCPUs: the suite runs alone in CI and systemd starts units in
		// parallel.
		"-machine", "q35", "-accel", "tcg", "-smp", "2", "-m", "1024",
		"-kernel", g.kernel, "-initrd", g.initrd, "-append", strings.Join(cmdline, " "),
		"-drive", "if=virtio,format=qcow2,file=" + g.disk,
		"-drive", "if=virtio,format=raw,readonly=on,file=" + g.seed,
		"-netdev", netdev,
		"-device", "virtio-net-pci,netdev=net0,mac=" + g.mac,
		"-serial", "file:" + console,
		"-serial", "file:" + report,
	}
	names := make([]string, 0, len(o.creds))
	for n := range o.creds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		// systemd imports SMBIOS type 11 strings as system credentials;
		// base64 keeps newlines and commas out of QEMU's option syntax.
		args = append(args, "-smbios", "type=11,value=io.systemd.credential.binary:"+n+"="+base64.StdEncoding.EncodeToString(o.creds[n]))
	}
	return args
}

// boot runs the guest until it powers off or the time limit passes. QEMU and
// the socat processes it forks run in their own process group, which is
// killed whatever happens.
func (g *guest) boot(o bootOptions) bootResult {
	console := filepath.Join(g.dir, o.name+"-console.log")
	report := filepath.Join(g.dir, o.name+"-report.log")
	qlog, err := os.Create(filepath.Join(g.dir, o.name+"-qemu.log"))
	if err != nil {
		return bootResult{err: err}
	}
	defer qlog.Close()

	cmd := exec.Command("qemu-system-x86_64", g.args(o, console, report)...)
	cmd.Stdout, cmd.Stderr = qlog, qlog
	// Pdeathsig: if the test binary dies, the kernel kills QEMU too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return bootResult{err: fmt.Errorf("cannot start qemu: %w", err)}
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var res bootResult
	select {
	case err := <-done:
		if err != nil {
			q, _ := os.ReadFile(qlog.Name())
			err = fmt.Errorf("qemu failed: %w: %s", err, q)
		}
		res.err = err
	case <-time.After(o.timeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
		res.err = fmt.Errorf("the guest did not power off within %s", o.timeout)
	}
	// socat children of guestfwd share the group; none may outlive the boot.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	res.took = time.Since(start)
	if ps := cmd.ProcessState; ps != nil {
		res.cpu = ps.UserTime() + ps.SystemTime()
	}
	res.pgid = pgid
	c, _ := os.ReadFile(console)
	r, _ := os.ReadFile(report)
	res.console = string(c)
	// ttyS1 is a terminal: strip the carriage returns its line discipline may add.
	res.report = strings.ReplaceAll(string(r), "\r", "")
	return res
}

// groupMembers lists the processes still in process group pgid.
func groupMembers(pgid int) []string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []string{"cannot read /proc: " + err.Error()}
	}
	var left []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces) start at ")".
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) {
			left = append(left, fmt.Sprintf("%d %s", pid, strings.TrimSpace(s[:i+1])))
		}
	}
	return left
}
