//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
	"github.com/homelab-infra/homelab-infra/test/proxmoxsim"
)

// node is the Proxmox side of a stack: the API simulator (the suite's only
// fake), a cluster of two nodes played as PVE 9.1, and each node's real
// sshd the provider uploads snippets through.
type node struct {
	Sim *proxmoxsim.Sim
	// SSHDs are the nodes' sshds, by node name.
	SSHDs map[string]*proxmoxsim.SSHD
	// token is the API token the simulator accepts ("id=secret").
	token string
}

// templateFacts is nix/template/template.json: the template the user
// imports (README, "On your side"), which the simulator holds.
type templateFacts struct {
	Image         string `json:"image"`
	TemplateVMID  int    `json:"templateVmId"`
	Storage       string `json:"storage"`
	DiskInterface string `json:"diskInterface"`
	SCSIHardware  string `json:"scsiHardware"`
	DiskGiB       int64  `json:"diskGiB"`
	Boot          string `json:"boot"`
}

func readTemplateFacts(root string) (templateFacts, error) {
	var f templateFacts
	b, err := os.ReadFile(filepath.Join(root, "nix", "template", "template.json"))
	if err != nil {
		return f, err
	}
	return f, json.Unmarshal(b, &f)
}

// The lab the simulator stands for: VLAN 10 is dns01's subnet (static), the
// untagged bridge has a DHCP server for docker01, VLAN 20 has one too, and
// VLAN 30 has none (a DHCP machine there gets no address).
var labDHCP = map[string]string{
	"vmbr0":    "192.168.1.0/24",
	"vmbr0.10": "10.0.10.0/24",
	"vmbr0.20": "10.0.20.0/24",
}

// hostDNS is the node's own resolv.conf, which Proxmox hands any VM whose
// config names no nameserver.
var hostDNS = []string{"192.0.2.53"}

// clusterNodes are the simulated cluster's nodes; the template is on the
// first, where the Composition places machines by default.
var clusterNodes = []string{"pve1", "pve2"}

// startNode starts a simulated cluster with the repo's template and each
// node's sshd, set up as the README documents it: the API token with the
// users, roles and ACLs of deploy/proxmox/token.sh, each node's snippets
// user as deploy/proxmox/node.sh makes it. tune, if set, changes the
// simulator's options.
func startNode(root, dir string, tune func(*proxmoxsim.Options)) (*node, error) {
	facts, err := readTemplateFacts(root)
	if err != nil {
		return nil, fmt.Errorf("cannot read nix/template/template.json: %w", err)
	}
	o := proxmoxsim.Options{
		Dir: filepath.Join(dir, "pve"),
		PVE: 9,
		Templates: []proxmoxsim.Template{{
			VMID: facts.TemplateVMID, Name: facts.Image + "-template", Node: clusterNodes[0],
			DiskInterface: facts.DiskInterface, DiskGiB: facts.DiskGiB, SCSIHardware: facts.SCSIHardware, Boot: facts.Boot,
		}},
		DHCP:     labDHCP,
		HostDNS:  hostDNS,
		TaskTime: 300 * time.Millisecond,
		BootTime: time.Second,
	}
	for _, name := range clusterNodes {
		o.Nodes = append(o.Nodes, proxmoxsim.Node{Name: name})
	}
	if tune != nil {
		tune(&o)
	}
	api, err := proxmoxsim.LoadAPI(o.PVE)
	if err != nil {
		return nil, err
	}
	if o.Access == nil {
		o.Access, err = proxmoxsim.RunPveumScript(api, filepath.Join(root, "deploy", "proxmox", "token.sh"), fmt.Sprintf("TEMPLATE_VMIDS=%d", facts.TemplateVMID))
		if err != nil {
			return nil, fmt.Errorf("cannot run the README's token set-up: %w", err)
		}
	}
	toks := o.Access.Tokens()
	if len(toks) != 1 {
		return nil, fmt.Errorf("the token set-up makes %d API tokens, want 1: %v", len(toks), toks)
	}
	secret := randomHex(16)
	if err := o.Access.SetTokenSecret(toks[0], secret); err != nil {
		return nil, err
	}
	n := &node{SSHDs: map[string]*proxmoxsim.SSHD{}, token: toks[0] + "=" + secret}
	n.Sim, err = proxmoxsim.Start(o)
	if err != nil {
		return nil, err
	}
	key := ""
	for _, name := range clusterNodes {
		d, err := n.Sim.NodeSSHD(filepath.Join(dir, "sshd-"+name), name, filepath.Join(root, "deploy", "proxmox", "node.sh"), key)
		if err != nil {
			n.Stop()
			return nil, err
		}
		n.SSHDs[name] = d
		key = d.KeyFile()
	}
	return n, nil
}

// Credentials is the provider's credentials Secret, in the flat format the
// provider reads (crossplane/provider/providerconfig.yaml documents it).
func (n *node) Credentials() []byte {
	b, _ := json.Marshal(map[string]string{
		"endpoint":        n.Sim.URL,
		"api_token":       n.token,
		"insecure":        "true",
		"ssh_username":    n.SSHDs[clusterNodes[0]].User,
		"ssh_private_key": n.SSHDs[clusterNodes[0]].PrivateKey,
	})
	return b
}

func (n *node) Stop() {
	n.Sim.Close()
	for _, d := range n.SSHDs {
		d.Stop()
	}
}

// Tail is the simulator's last requests and the sshds' logs, for a
// failure.
func (n *node) Tail(lines int) string {
	out := fmt.Sprintf("----- proxmoxsim: last %d API requests -----\n%s", lines, n.Sim.RequestLog(lines))
	if u := n.Sim.UncheckedFormats(); len(u) > 0 {
		out += fmt.Sprintf("----- proxmoxsim: formats not checked: %v\n", u)
	}
	for _, name := range clusterNodes {
		d := n.SSHDs[name]
		if d == nil {
			continue
		}
		log := d.Log()
		if parts := strings.Split(log, "\n"); len(parts) > lines {
			log = strings.Join(parts[len(parts)-lines:], "\n")
		}
		out += fmt.Sprintf("----- %s sshd -----\n%s\n", name, log)
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// ownNode is a simulated cluster of the test's own (tune as for
// startNode), for a test that changes Proxmox itself; it stops with the
// test.
func ownNode(t testing.TB, tune func(*proxmoxsim.Options)) *node {
	t.Helper()
	testenv.Real(t)
	n, err := startNode(testenv.RepoRoot(t), filepath.Join(t.TempDir(), "node"), tune)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return n
}
