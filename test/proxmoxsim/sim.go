package proxmoxsim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a simulated single-node cluster.
type Options struct {
	// Node is the node's name (pve1).
	Node string
	// Dir holds the directory storage "local" (its snippets folder is where
	// the sshd writes). Required.
	Dir string
	// Token is the API token the node accepts, "user@realm!name=secret".
	Token string
	// NodeAddress is the address GET /nodes/{node}/network reports for the
	// node's bridge; bpg connects to port 22 there to upload snippets.
	NodeAddress string
	// Templates are the template VMs the node holds.
	Templates []Template
	// DHCP maps a bridge and VLAN ("vmbr0" untagged, "vmbr0.20") to the
	// subnet its DHCP server leases from. A DHCP guest elsewhere gets no
	// address.
	DHCP map[string]string
	// HostDNS is the node's own /etc/resolv.conf: the nameservers Proxmox
	// hands a guest whose config names none.
	HostDNS []string
	// TaskTime is how long a clone, resize or start task runs.
	TaskTime time.Duration
	// BootTime is how long a guest takes from start until its agent answers.
	BootTime time.Duration
	// RefuseClones is how many clone requests the node refuses, as a loaded
	// node refuses a task whose worker does not start in time ("got no
	// worker upid - start worker failed", a transient error bpg retries
	// where it allows retries: clone.retries).
	RefuseClones int
	// Logf reports what the simulator does (nil: quiet).
	Logf func(format string, args ...any)
}

// Template is a template VM as `qmrestore` of the NixOS VMA and `qm template`
// leave it.
type Template struct {
	VMID int
	Name string
	// DiskInterface is the OS disk's bus (virtio0 for nixpkgs' image).
	DiskInterface string
	DiskGiB       int64
	// Boot is the config's boot option ("" when the image sets none).
	Boot string
}

// Sim is a running simulator.
type Sim struct {
	URL string // https://127.0.0.1:<port>/
	// CACert is the PEM of the server's self-signed certificate.
	CACert []byte

	opts Options
	srv  *http.Server
	ln   net.Listener

	mu       sync.Mutex
	vms      map[int]*vm
	volumes  map[string]*volume
	tasks    map[string]*task
	requests []Request
	upidSeq  int
	refused  int // clone requests refused so far
	denials  []*denial
	closed   bool
}

// Request is one API call as the simulator saw it.
type Request struct {
	Time   time.Time
	Method string
	Path   string
	Form   string // the form or query, encoded
	Status int
	Error  string
}

func (r Request) String() string {
	s := fmt.Sprintf("%s %s %s %d", r.Time.Format("15:04:05.000"), r.Method, r.Path, r.Status)
	if r.Form != "" {
		s += " " + r.Form
	}
	if r.Error != "" {
		s += " -> " + r.Error
	}
	return s
}

// Start serves a simulated node on a loopback port.
func Start(o Options) (*Sim, error) {
	if o.Node == "" {
		o.Node = "pve1"
	}
	if o.Dir == "" {
		return nil, fmt.Errorf("proxmoxsim: Options.Dir is required")
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "local", "snippets"), 0o755); err != nil {
		return nil, fmt.Errorf("cannot create the snippets folder: %w", err)
	}
	s := &Sim{opts: o, vms: map[int]*vm{}, volumes: map[string]*volume{}, tasks: map[string]*task{}}
	for _, t := range o.Templates {
		s.addTemplate(t)
	}
	cert, pemBytes, err := selfSigned()
	if err != nil {
		return nil, err
	}
	s.CACert = pemBytes
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cannot listen: %w", err)
	}
	s.ln = ln
	s.URL = fmt.Sprintf("https://%s/", ln.Addr())
	s.srv = &http.Server{
		Handler: s,
		// HTTP/1.1 only: error answers carry Proxmox's message in the status
		// line, which needs a hijacked connection.
		TLSConfig:    &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}},
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	go func() { _ = s.srv.ServeTLS(ln, "", "") }()
	return s, nil
}

// Close stops serving. The state stays readable.
func (s *Sim) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	_ = s.srv.Close()
}

// SnippetsDir is the folder of storage local's snippets (what the node's sshd
// writes and every cold start reads).
func (s *Sim) SnippetsDir() string { return filepath.Join(s.opts.Dir, "local", "snippets") }

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
	ID     int
	Config map[string]string
	Status string // running or stopped
	Lock   string
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

func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "pve1 (proxmoxsim)"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(48 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pemBytes := pemEncode("CERTIFICATE", der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pemBytes, nil
}

func itoa(n int) string { return strconv.Itoa(n) }

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

// denial is a call the node refuses for a missing privilege (Deny).
type denial struct {
	method string
	path   *regexp.Regexp
	acl    string // the ACL path and privilege in the answer
}

// Deny makes the node answer 403 to every call of method whose API path
// (below /api2/json) matches pathRE, as PVE answers a token that lacks a
// privilege: "Permission check failed (<acl path>, <privilege>)"
// (PVE::RPCEnvironment::check_perm_modify and check, pve-access-control).
// It stands for one missing ACL, for tests of how a client reports a
// refused call; it is not a model of PVE's permissions. The returned
// function grants the privilege again.
func (s *Sim) Deny(method, pathRE, aclPath, privilege string) (grant func()) {
	d := &denial{method: method, path: regexp.MustCompile("^" + pathRE + "$"), acl: aclPath + ", " + privilege}
	s.mu.Lock()
	s.denials = append(s.denials, d)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, e := range s.denials {
			if e == d {
				s.denials = append(s.denials[:i], s.denials[i+1:]...)
				return
			}
		}
	}
}

// denied is the 403 for a call a Deny covers, or nil.
func (s *Sim) denied(method, path string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.denials {
		if d.method == method && d.path.MatchString(strings.TrimPrefix(path, "/api2/json")) {
			return fail(http.StatusForbidden, "Permission check failed (%s)", d.acl)
		}
	}
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
