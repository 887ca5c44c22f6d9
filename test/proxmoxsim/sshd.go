package proxmoxsim

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// SSHD is the node's SSH server: a real OpenSSH sshd, as on a Proxmox node,
// through which bpg uploads snippets (a sudo probe, then `tee` of the file
// into <storage path>/snippets/, then an SFTP stat). bpg always connects to
// port 22 of the address GET /nodes/{node}/network reports (its
// apiResolver; the provider's credentials cannot set a port), so it listens
// on port 22 of a loopback address of its own, 127.x.y.z, which two test
// runs on one machine do not share.
type SSHD struct {
	// Addr is the address it listens on (port 22).
	Addr string
	// User is the login the provider uses.
	User string
	// PrivateKey is the provider's key (OpenSSH PEM), the one in
	// authorized_keys.
	PrivateKey string

	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

// StartSSHD runs sshd for the node, with its own host key, accepting the
// key it generates for root. dir holds its keys, config and pid file.
func StartSSHD(dir string) (*SSHD, error) {
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/sshd"); e == nil {
			sshd = "/usr/sbin/sshd"
		} else {
			return nil, fmt.Errorf("cannot find sshd (install openssh-server; hack/deps.sh does): %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	clientKey := filepath.Join(dir, "provider_ed25519")
	for _, k := range []string{hostKey, clientKey} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", filepath.Base(k), "-f", k).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub, err := os.ReadFile(clientKey + ".pub")
	if err != nil {
		return nil, err
	}
	priv, err := os.ReadFile(clientKey)
	if err != nil {
		return nil, err
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, pub, 0o600); err != nil {
		return nil, err
	}
	// sshd's privilege-separation folder.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, fmt.Errorf("cannot create /run/sshd (sshd needs root): %w", err)
	}
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		addr, err := freeLoopback22()
		if err != nil {
			lastErr = err
			continue
		}
		cfg := strings.Join([]string{
			"ListenAddress " + addr, "Port 22", "HostKey " + hostKey,
			"PidFile " + filepath.Join(dir, "sshd.pid"), "AuthorizedKeysFile " + authorized,
			"PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
			"AllowUsers root", "StrictModes no", "UsePAM no", "Subsystem sftp internal-sftp", "LogLevel VERBOSE", "",
		}, "\n")
		cfgPath := filepath.Join(dir, "sshd_config")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			return nil, err
		}
		d := &SSHD{Addr: addr, User: "root", PrivateKey: string(priv), logPath: filepath.Join(dir, "sshd.log"), done: make(chan struct{})}
		logFile, err := os.Create(d.logPath)
		if err != nil {
			return nil, err
		}
		d.cmd = exec.Command(sshd, "-D", "-e", "-f", cfgPath)
		d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
		d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := d.cmd.Start(); err != nil {
			_ = logFile.Close()
			return nil, fmt.Errorf("cannot start sshd: %w", err)
		}
		go func() { _ = d.cmd.Wait(); _ = logFile.Close(); close(d.done) }()
		if err := d.waitListening(10 * time.Second); err != nil {
			d.Stop()
			lastErr = err
			continue
		}
		return d, nil
	}
	return nil, fmt.Errorf("cannot start the node's sshd on port 22 of a loopback address: %w", lastErr)
}

func (d *SSHD) waitListening(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return fmt.Errorf("sshd exited: %s", d.Log())
		default:
		}
		if strings.Contains(d.Log(), "Server listening on") {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("sshd did not listen within %s: %s", timeout, d.Log())
}

// Log is sshd's output so far.
func (d *SSHD) Log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

// Stop ends sshd and its session processes.
func (d *SSHD) Stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	}
}

// freeLoopback22 picks a random 127.x.y.z whose port 22 is free.
func freeLoopback22() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(250*250))
	if err != nil {
		return "", err
	}
	addr := fmt.Sprintf("127.%d.%d.%d", 1+n.Int64()/250, 1+n.Int64()%250, 2+n.Int64()%200)
	l, err := net.Listen("tcp", addr+":22")
	if err != nil {
		return "", fmt.Errorf("%s:22: %w", addr, err)
	}
	_ = l.Close()
	return addr, nil
}
