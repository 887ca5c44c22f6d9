//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/homelab-infra/homelab-infra/test/proxmoxsim"
)

// node is the Proxmox side of a stack: the API simulator (the suite's only
// fake) and the node's real sshd the provider uploads snippets through.
type node struct {
	Sim  *proxmoxsim.Sim
	SSHD *proxmoxsim.SSHD
	// token is the API token the simulator accepts.
	token string
}

// templateFacts is nix/template/template.json: the template the user
// imports (README, "On your side"), which the simulator holds.
type templateFacts struct {
	Image         string `json:"image"`
	TemplateVMID  int    `json:"templateVmId"`
	Storage       string `json:"storage"`
	DiskInterface string `json:"diskInterface"`
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

// startNode starts a simulated pve1 with the repo's template, and its sshd;
// tune, if set, changes the simulator's options.
func startNode(root, dir string, tune func(*proxmoxsim.Options)) (*node, error) {
	facts, err := readTemplateFacts(root)
	if err != nil {
		return nil, fmt.Errorf("cannot read nix/template/template.json: %w", err)
	}
	sshd, err := proxmoxsim.StartSSHD(filepath.Join(dir, "sshd"))
	if err != nil {
		return nil, err
	}
	n := &node{SSHD: sshd, token: "crossplane@pve!provider=" + randomHex(16)}
	o := proxmoxsim.Options{
		Node:        "pve1",
		Dir:         filepath.Join(dir, "pve"),
		Token:       n.token,
		NodeAddress: sshd.Addr,
		Templates: []proxmoxsim.Template{{
			VMID: facts.TemplateVMID, Name: facts.Image + "-template",
			DiskInterface: facts.DiskInterface, DiskGiB: facts.DiskGiB, Boot: facts.Boot,
		}},
		DHCP:     labDHCP,
		HostDNS:  hostDNS,
		TaskTime: 300 * time.Millisecond,
		BootTime: time.Second,
	}
	if tune != nil {
		tune(&o)
	}
	n.Sim, err = proxmoxsim.Start(o)
	if err != nil {
		sshd.Stop()
		return nil, err
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
		"ssh_username":    n.SSHD.User,
		"ssh_private_key": n.SSHD.PrivateKey,
	})
	return b
}

func (n *node) Stop() {
	n.Sim.Close()
	n.SSHD.Stop()
}

// Tail is the simulator's last requests and sshd's log, for a failure.
func (n *node) Tail(lines int) string {
	log := n.SSHD.Log()
	if parts := strings.Split(log, "\n"); len(parts) > lines {
		log = strings.Join(parts[len(parts)-lines:], "\n")
	}
	return fmt.Sprintf("----- proxmoxsim: last %d API requests -----\n%s----- node sshd -----\n%s\n", lines, n.Sim.RequestLog(lines), log)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}
