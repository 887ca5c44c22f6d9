package harness

import (
	"fmt"
	"os/exec"
	"strings"
)

// In a cluster, pods reach the API server through the `kubernetes` Service:
// the kubelet gives every container KUBERNETES_SERVICE_HOST (the first
// address of the service range) and KUBERNETES_SERVICE_PORT (443), and
// kube-proxy routes them to the API server. There is no kube-proxy here, so
// with Config.InCluster the API server listens on that very address and
// port: the address is put on the host's loopback interface, where host
// processes and pods on the node's bridge (routed through their gateway,
// the host) both reach it. Servers a pod must reach (a git server,
// Prometheus) listen on it too (ControlPlane.ClusterIP).
//
// Each stack picks its own service range, 10.96.N.0/24, so two stacks
// never share an address.

// serviceRange reserves a service range: the first N whose address is not
// on lo yet gets it (adding an address that exists fails, so two stacks
// starting at once cannot both take one).
func (cp *ControlPlane) serviceRange() (ip, cidr string, err error) {
	for n := 1; n < 255; n++ {
		ip = fmt.Sprintf("10.96.%d.1", n)
		out, err := exec.Command("ip", "addr", "add", ip+"/32", "dev", "lo").CombinedOutput()
		if err == nil {
			cp.cleanups = append(cp.cleanups, func() { _ = exec.Command("ip", "addr", "del", ip+"/32", "dev", "lo").Run() })
			return ip, fmt.Sprintf("10.96.%d.0/24", n), nil
		}
		// iproute2 says "File exists" (EEXIST) or, as Debian 12's does for
		// an address on lo, "Address already assigned".
		if !strings.Contains(string(out), "File exists") && !strings.Contains(string(out), "already assigned") {
			return "", "", fmt.Errorf("cannot add %s to lo (root is needed for a node): %v: %s", ip, err, out)
		}
	}
	return "", "", fmt.Errorf("no free service range 10.96.N.0/24: every 10.96.N.1 is on lo (stacks left behind? ip addr show dev lo)")
}
