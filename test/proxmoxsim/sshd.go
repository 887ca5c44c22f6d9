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

// SSHD is a node's SSH server: a real OpenSSH sshd, as on a Proxmox node,
// through which bpg uploads snippets (a sudo probe, then `tee` of the file
// into <storage path>/snippets/, then an SFTP stat). bpg always connects to
// port 22 of the address GET /nodes/{node}/network reports (its
// apiResolver; the provider's credentials cannot set a port), so it listens
// on port 22 of a loopback address of its own, 127.x.y.z, which two test
// runs on one machine do not share.
//
// The node is set up as a user sets up a real one: sshd runs in a mount
// namespace of its own, with a private copy of /etc and an empty /home (so
// nothing on the host changes), the node's directory storages mounted where
// the storage configuration says they are (Sim.StoragePath), and the
// documented set-up script (deploy/proxmox/node.sh) run there first. The
// provider then logs in as that script's unprivileged user, with no sudo,
// and may write the snippets folder and nothing else.
type SSHD struct {
	// Addr is the address it listens on (port 22).
	Addr string
	// User is the login the provider uses.
	User string
	// PrivateKey is the provider's key (OpenSSH PEM), the one in
	// authorized_keys.
	PrivateKey string

	cmd     *exec.Cmd
	keyFile string
	logPath string
	done    chan struct{}
}

// SSHDOptions configure a node's sshd.
type SSHDOptions struct {
	// SetupScript is the node set-up the README documents
	// (deploy/proxmox/node.sh), run as root in the node's namespace with
	// PROVIDER_SSH_USER, PROVIDER_SSH_KEY and SNIPPETS_DIR set.
	SetupScript string
	// User is the provider's login (default "crossplane").
	User string
	// Mounts maps a path on the node (a directory storage's StoragePath)
	// to the host folder that holds the node's copy (Sim.StorageDir).
	Mounts map[string]string
	// SnippetsDir is the snippets folder as the node sees it.
	SnippetsDir string
	// ProviderKey is the provider's private key file, its public key
	// beside it (".pub"); empty, a key is made. Nodes of one cluster take
	// the same key: the provider's credentials hold one.
	ProviderKey string
}

// StartSSHD runs sshd for a node. dir holds its keys, config, log and the
// namespace's /etc and /home.
func StartSSHD(dir string, o SSHDOptions) (*SSHD, error) {
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/sshd"); e == nil {
			sshd = "/usr/sbin/sshd"
		} else {
			return nil, fmt.Errorf("cannot find sshd (install openssh-server; hack/deps.sh does): %w", err)
		}
	}
	if o.User == "" {
		o.User = "crossplane"
	}
	if o.SetupScript == "" {
		return nil, fmt.Errorf("proxmoxsim: SSHDOptions.SetupScript (deploy/proxmox/node.sh) is required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	clientKey := o.ProviderKey
	keys := []string{hostKey}
	if clientKey == "" {
		clientKey = filepath.Join(dir, "provider_ed25519")
		keys = append(keys, clientKey)
	}
	for _, k := range keys {
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
	// The namespace's /etc (a copy, so useradd changes only it) and /home.
	etc, home := filepath.Join(dir, "etc"), filepath.Join(dir, "home")
	if out, err := exec.Command("cp", "-a", "/etc", etc).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cannot copy /etc for the node: %v: %s", err, out)
	}
	if err := os.Mkdir(home, 0o755); err != nil {
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
			"PidFile " + filepath.Join(dir, "sshd.pid"),
			"PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin no",
			"AllowUsers " + o.User, "UsePAM no", "Subsystem sftp internal-sftp", "LogLevel VERBOSE", "",
		}, "\n")
		cfgPath := filepath.Join(dir, "sshd_config")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			return nil, err
		}
		d := &SSHD{Addr: addr, User: o.User, PrivateKey: string(priv), keyFile: clientKey, logPath: filepath.Join(dir, "sshd.log"), done: make(chan struct{})}
		logFile, err := os.Create(d.logPath)
		if err != nil {
			return nil, err
		}
		script := []string{"set -e", `mount --bind "$NODE_ETC" /etc`, `mount --bind "$NODE_HOME" /home`}
		for target, source := range o.Mounts {
			script = append(script, fmt.Sprintf("mount --bind %q %q", source, target))
		}
		script = append(script,
			`bash "$NODE_SETUP" >&2`,
			fmt.Sprintf("exec %q -D -e -f %q", sshd, cfgPath))
		d.cmd = exec.Command("unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", strings.Join(script, "\n"))
		d.cmd.Env = append(os.Environ(),
			"NODE_ETC="+etc, "NODE_HOME="+home, "NODE_SETUP="+o.SetupScript,
			"PROVIDER_SSH_USER="+o.User, "PROVIDER_SSH_KEY="+strings.TrimSpace(string(pub)),
			"SNIPPETS_DIR="+o.SnippetsDir)
		d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
		d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := d.cmd.Start(); err != nil {
			_ = logFile.Close()
			return nil, fmt.Errorf("cannot start sshd: %w", err)
		}
		go func() { _ = d.cmd.Wait(); _ = logFile.Close(); close(d.done) }()
		if err := d.waitListening(30 * time.Second); err != nil {
			d.Stop()
			lastErr = err
			if strings.Contains(err.Error(), "Address already in use") {
				continue
			}
			return nil, err
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

// Log is sshd's output so far (and the set-up script's).
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

// NodeSSHD starts node's sshd for s: the node's directory storages mounted
// at their StoragePath, the set-up script run for the snippets folder of
// storage Options.SnippetStorage, providerKey (a private key file, "" for a new one)
// authorized; and sets the node's address to the sshd's.
func (s *Sim) NodeSSHD(dir, node, setupScript, providerKey string) (*SSHD, error) {
	mounts := map[string]string{}
	for _, st := range s.opts.Storages {
		if st.Type == "dir" {
			mounts[s.StoragePath(st.ID)] = s.StorageDir(node, st.ID)
		}
	}
	d, err := StartSSHD(dir, SSHDOptions{SetupScript: setupScript, Mounts: mounts, ProviderKey: providerKey,
		SnippetsDir: filepath.Join(s.StoragePath(s.opts.SnippetStorage), "snippets")})
	if err != nil {
		return nil, err
	}
	if err := s.SetNodeAddress(node, d.Addr); err != nil {
		d.Stop()
		return nil, err
	}
	return d, nil
}

// KeyFile is the provider's private key file (for a second node).
func (d *SSHD) KeyFile() string { return d.keyFile }
