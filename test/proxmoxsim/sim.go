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
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a simulated cluster.
type Options struct {
	// Nodes are the cluster's nodes (at least one). Node and NodeAddress
	// are the short form for a single node.
	Nodes       []Node
	Node        string
	NodeAddress string
	// Dir holds the nodes' storages. Required.
	Dir string
	// PVE is the major release played, 8 or 9 (default 9): its API schema
	// (../shared/pve-api) decides which calls and parameters exist and
	// which privileges there are.
	PVE int
	// Access is the cluster's users, roles, ACLs, pools and API tokens
	// (RunPveumScript makes it from a set-up script). Without it, Token
	// is the one token, with every privilege on / (as root's own token).
	Access *Access
	// Token is "user@realm!name=secret" for a cluster without Access.
	Token string
	// Storages are the cluster's storage.cfg; nil means a fresh
	// install's: "local" (a directory, with the snippets content type the
	// README asks for) and "local-lvm" (LVM-thin, for disk images), both
	// local to each node.
	Storages []Storage
	// SnippetStorage is the directory storage whose snippets folder each
	// node's sshd sets up for the provider (NodeSSHD); default "local".
	SnippetStorage string
	// Templates are the template VMs the cluster holds (on their Node, by
	// default the first).
	Templates []Template
	// DHCP maps a bridge and VLAN ("vmbr0" untagged, "vmbr0.20") to the
	// subnet its DHCP server leases from. A DHCP guest elsewhere gets no
	// address.
	DHCP map[string]string
	// HostDNS is the nodes' own /etc/resolv.conf: the nameservers Proxmox
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

// Node is one cluster node.
type Node struct {
	Name string
	// Address is what GET /nodes/{node}/network reports for the node's
	// bridge; bpg connects to port 22 there to upload snippets.
	Address string
	// MemoryMiB is the most memory the node's kernel lets QEMU map for a
	// guest (with the default overcommit heuristic, about its RAM and
	// swap): a VM asking for more fails to start (coldStart). 0: no
	// limit. SetNodeMemory changes it, as adding RAM or stopping other
	// load does.
	MemoryMiB int64
}

// Storage is one storage.cfg entry.
type Storage struct {
	ID      string
	Type    string // dir, lvmthin, nfs, ...
	Content []string
	// Shared storages hold the same volumes on every node; the others
	// are one per node.
	Shared bool
	// VG is an lvm or lvmthin storage's volume group (default "pve", as
	// the installer's local-lvm).
	VG string
	// Size is an lvm (thick) storage's volume group size in bytes on each
	// node: its volumes take their full size from it, and a disk grown
	// past its free extents is refused (resize). 0: no limit. An lvmthin
	// pool has none: LVM lets thin volumes' sizes exceed the pool.
	// SetStorageSize changes it, as vgextend with a new disk does.
	Size int64
}

// Template is a template VM as `qmrestore` of the NixOS VMA and `qm template`
// leave it.
type Template struct {
	VMID int
	Name string
	// Node holds it (default: the first node).
	Node string
	// DiskInterface is the OS disk's bus (virtio0 for nixpkgs' image).
	DiskInterface string
	DiskGiB       int64
	// SCSIHardware is its scsihw (default: nixpkgs' virtio-scsi-single).
	SCSIHardware string
	// Boot is the config's boot option ("" when the image sets none).
	Boot string
}

// Sim is a running simulator.
type Sim struct {
	URL string // https://127.0.0.1:<port>/
	// CACert is the PEM of the server's self-signed certificate.
	CACert []byte

	opts     Options
	api      *API
	valid    *validator
	access   *Access
	nodes    map[string]*Node
	storages map[string]Storage
	srv      *http.Server
	ln       net.Listener

	// sizes are the lvm storages' sizes by node and storage (Storage.Size).
	sizes map[[2]string]int64

	mu       sync.Mutex
	vms      map[int]*vm
	volumes  map[string]*volume
	tasks    map[string]*task
	requests []Request
	upidSeq  int
	denies   int // Deny's roles so far
	refused  int // clone requests refused so far
	closed   bool
}

// Request is one API call as the simulator saw it.
type Request struct {
	Time   time.Time
	Who    string // the API token
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

// Start serves a simulated cluster on a loopback port.
func Start(o Options) (*Sim, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("proxmoxsim: Options.Dir is required")
	}
	if len(o.Nodes) == 0 {
		if o.Node == "" {
			o.Node = "pve1"
		}
		o.Nodes = []Node{{Name: o.Node, Address: o.NodeAddress}}
	}
	if o.PVE == 0 {
		o.PVE = 9
	}
	if o.SnippetStorage == "" {
		o.SnippetStorage = "local"
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Storages == nil {
		o.Storages = []Storage{
			{ID: "local", Type: "dir", Content: []string{"backup", "iso", "snippets", "vztmpl"}},
			{ID: imageStorage, Type: "lvmthin", Content: []string{"images", "rootdir"}},
		}
	}
	api, err := LoadAPI(o.PVE)
	if err != nil {
		return nil, err
	}
	s := &Sim{opts: o, api: api, valid: &validator{privileges: api.privileges},
		nodes: map[string]*Node{}, storages: map[string]Storage{}, sizes: map[[2]string]int64{},
		vms: map[int]*vm{}, volumes: map[string]*volume{}, tasks: map[string]*task{}}
	for i := range o.Nodes {
		s.nodes[o.Nodes[i].Name] = &o.Nodes[i]
	}
	for _, st := range o.Storages {
		s.storages[st.ID] = st
		for _, n := range o.Nodes {
			s.sizes[[2]string{n.Name, st.ID}] = st.Size
		}
	}
	s.access = o.Access
	if s.access == nil {
		s.access, err = rootToken(api, o.Token)
		if err != nil {
			return nil, err
		}
	}
	if err := s.makeStorageDirs(); err != nil {
		return nil, err
	}
	for _, t := range o.Templates {
		if t.Node == "" {
			t.Node = o.Nodes[0].Name
		}
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

// rootToken is a cluster whose one token ("user@realm!name=secret") has
// every privilege on /, without privilege separation.
func rootToken(api *API, tok string) (*Access, error) {
	a := NewAccess(api)
	id, secret, ok := strings.Cut(tok, "=")
	m := tokenRE.FindStringSubmatch(id)
	if !ok || m == nil {
		return nil, fmt.Errorf("proxmoxsim: Options.Token %q is not user@realm!name=secret", tok)
	}
	a.Users[m[1]] = &User{ID: m[1], Tokens: map[string]*Token{m[4]: {Secret: secret}}}
	a.ACL["/"] = []ACLEntry{{Who: m[1], Role: "Administrator", Propagate: true}}
	return a, nil
}

// Close stops serving. The state stays readable.
func (s *Sim) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	_ = s.srv.Close()
}

// API is the schema of the release the simulator plays.
func (s *Sim) API() *API { return s.api }

// UncheckedFormats lists the named formats the calls so far used that the
// simulator has no code for (formats.go), so could not check.
func (s *Sim) UncheckedFormats() []string { return s.valid.Unchecked() }

// Nodes lists the cluster's node names, in the order given.
func (s *Sim) Nodes() []string {
	var out []string
	for _, n := range s.opts.Nodes {
		out = append(out, n.Name)
	}
	return out
}

// StoragePath is where every node mounts directory storage id (the "path"
// of its storage.cfg entry): one path, cluster-wide. Each node's sshd sees
// its own copy of a node-local storage there (StartSSHD's MountStorage).
func (s *Sim) StoragePath(id string) string { return filepath.Join(s.opts.Dir, "mnt", id) }

// StorageDir is the folder that holds node's copy of directory storage id
// (the same folder for every node when the storage is shared).
func (s *Sim) StorageDir(node, id string) string {
	if s.storages[id].Shared {
		return filepath.Join(s.opts.Dir, "shared", id)
	}
	return filepath.Join(s.opts.Dir, "nodes", node, id)
}

// SnippetsDir is the snippets folder of storage "local" on the first node.
func (s *Sim) SnippetsDir() string { return s.SnippetsDirOf(s.opts.Nodes[0].Name, "local") }

// SnippetsDirOf is the snippets folder of directory storage id on node.
func (s *Sim) SnippetsDirOf(node, id string) string {
	return filepath.Join(s.StorageDir(node, id), "snippets")
}

// makeStorageDirs creates each directory storage's folders (with a
// snippets folder where the storage has that content type, as activating
// the storage does) and the mount point StoragePath. The way down to them
// is opened to other users (o+x), since a node's sshd logs the provider in
// as an unprivileged user.
func (s *Sim) makeStorageDirs() error {
	for _, st := range s.opts.Storages {
		if st.Type != "dir" {
			continue
		}
		dirs := []string{s.StoragePath(st.ID)}
		for _, n := range s.opts.Nodes {
			dirs = append(dirs, s.StorageDir(n.Name, st.ID))
			if hasContent(st, "snippets") {
				dirs = append(dirs, s.SnippetsDirOf(n.Name, st.ID))
			}
		}
		for _, d := range dirs {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("cannot create %s: %w", d, err)
			}
			if err := openPath(d); err != nil {
				return err
			}
		}
	}
	return nil
}

// openPath adds o+x to d and each parent that lacks it (a test's temporary
// folders are 0700).
func openPath(d string) error {
	for p := d; p != "/" && p != "."; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o005); err != nil {
				return fmt.Errorf("cannot open %s to the nodes' unprivileged users: %w", p, err)
			}
		}
	}
	return nil
}

func hasContent(st Storage, c string) bool {
	for _, x := range st.Content {
		if x == c {
			return true
		}
	}
	return false
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

// SetNodeMemory sets the memory node lets a guest have (Node.MemoryMiB).
func (s *Sim) SetNodeMemory(node string, mib int64) error {
	return s.changeNode(node, func(n *Node) { n.MemoryMiB = mib })
}

// changeNode applies change to node under the simulator's lock.
func (s *Sim) changeNode(node string, change func(*Node)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[node]
	if n == nil {
		return fmt.Errorf("no node %s", node)
	}
	change(n)
	return nil
}

func (s *Sim) nodeMemory(node string) int64 {
	if n := s.nodes[node]; n != nil {
		return n.MemoryMiB
	}
	return 0
}

// SetNodeAddress sets the address node's network reports (its sshd's),
// once the sshd runs.
func (s *Sim) SetNodeAddress(node, addr string) error {
	return s.changeNode(node, func(n *Node) { n.Address = addr })
}
