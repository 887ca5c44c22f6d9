package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// A Node is a real Kubernetes node on this machine: the kubelet (built from
// the Kubernetes module by hack/build-rollout.sh) with Debian's containerd
// and runc, started as processes with their state in the stack's folder.
// What it took to run here is in ../shared/rollouts/README.md; each setting
// below that is not a default names its reason.
type Node struct {
	Name   string
	Socket string // containerd's
	dir    string
	bridge string
}

// NodeConfig says what the node runs.
type NodeConfig struct {
	Name string
	// Bin holds kubelet and kube-scheduler (hack/build-rollout.sh kubelet).
	Bin string
	// SandboxImage is the pause image every pod's sandbox runs.
	SandboxImage string
	// Mirrors send a registry's pulls elsewhere: registry host (as image
	// names carry it) to the URL that serves it, e.g. the lab's registry
	// to the tests' loopback one (http://127.0.0.1:PORT).
	Mirrors map[string]string
}

// StartNode starts containerd and the kubelet and waits until the node is
// Ready; the first node also starts kube-scheduler, which places pods on it.
// The stack must run with Config.InCluster.
func (cp *ControlPlane) StartNode(ctx context.Context, c NodeConfig) (*Node, error) {
	if cp.ClusterIP == "" {
		return nil, fmt.Errorf("a node needs the stack started with Config.InCluster: pods reach the API server through the kubernetes Service's address")
	}
	for _, b := range []string{"containerd", "runc"} {
		if _, err := exec.LookPath(b); err != nil {
			return nil, fmt.Errorf("cannot find %s (hack/deps.sh installs containerd and runc): %w", b, err)
		}
	}
	n := &Node{Name: c.Name, dir: filepath.Join(cp.Dir, "node-"+c.Name)}
	n.Socket = filepath.Join(n.dir, "containerd.sock")
	cni := filepath.Join(n.dir, "cni")
	hosts := filepath.Join(n.dir, "certs.d")
	for _, d := range []string{n.dir, cni, hosts, filepath.Join(n.dir, "pod-logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// containerd's per-registry hosts (hosts.toml): pulls of a mirrored
	// registry go to its mirror, over plain HTTP.
	for reg, url := range c.Mirrors {
		d := filepath.Join(hosts, reg)
		toml := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", url, url)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(toml), 0o644); err != nil {
			return nil, err
		}
	}
	// restrict_oom_score_adj: without CAP_SYS_RESOURCE runc cannot lower
	// the sandbox's oom_score_adj, and every sandbox fails.
	ctd := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
`, filepath.Join(n.dir, "containerd-root"), filepath.Join(n.dir, "containerd-state"), n.Socket, c.SandboxImage, cni, hosts)
	if err := os.WriteFile(filepath.Join(n.dir, "containerd.toml"), []byte(ctd), 0o644); err != nil {
		return nil, err
	}
	// Pod networking: Debian's bridge and host-local plugins, no masquerade
	// (no iptables here). The bridge's name and the address store are the
	// node's own.
	n.bridge = "cni-" + strconv.Itoa(os.Getpid()%100000)
	conf := fmt.Sprintf(`{"cniVersion": "0.4.0", "name": "harness", "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.%d.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": %q}},
  {"type": "loopback"}]}`, n.bridge, os.Getpid()%250, filepath.Join(n.dir, "cni-ipam"))
	if err := os.WriteFile(filepath.Join(cni, "10-harness.conflist"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	ctdProc, err := cp.start("containerd-"+c.Name, cp.baseEnv(), "containerd", "--config", filepath.Join(n.dir, "containerd.toml"))
	if err != nil {
		return nil, err
	}
	cp.nodes = append(cp.nodes, n)
	cp.cleanups = append(cp.cleanups, n.cleanUp)
	if err := poll(ctx, time.Minute, func(context.Context) (bool, error) {
		_, err := os.Stat(n.Socket)
		return err == nil, err
	}, ctdProc); err != nil {
		return nil, fmt.Errorf("containerd did not start: %w", err)
	}

	kport, err := FreePort()
	if err != nil {
		return nil, err
	}
	hport, err := FreePort()
	if err != nil {
		return nil, err
	}
	// failCgroupV1 false: 1.35 refuses cgroup v1 by default (KEP-5573),
	// and this machine has the hybrid hierarchy. cgroupfs, no QoS cgroups,
	// no allocatable enforcement: nothing here manages cgroups for it.
	// evictionHard: the defaults are shares of the disk (imagefs.available
	// 15%, cmd/kubelet/app/server.go eviction.DefaultEvictionHard), which a
	// large shared disk crosses with tens of GB free: the node reports
	// DiskPressure, is tainted, and would evict the steps. Absolute floors
	// instead; every signal named, as the kubelet drops the unnamed ones.
	kcfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
containerRuntimeEndpoint: unix://%s
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
podLogsDir: %s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
registerNode: true
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1Gi
  nodefs.inodesFree: "1%%"
  imagefs.available: 1Gi
  imagefs.inodesFree: "1%%"
`, n.Socket, kport, hport, filepath.Join(n.dir, "pod-logs"))
	if err := os.WriteFile(filepath.Join(n.dir, "kubelet.yaml"), []byte(kcfg), 0o644); err != nil {
		return nil, err
	}
	kl, err := cp.start("kubelet-"+c.Name, cp.baseEnv(), filepath.Join(c.Bin, "kubelet"), "--config", filepath.Join(n.dir, "kubelet.yaml"),
		"--kubeconfig", cp.Kubeconfig, "--root-dir", filepath.Join(n.dir, "kubelet"), "--hostname-override", c.Name)
	if err != nil {
		return nil, err
	}
	err = poll(ctx, 2*time.Minute, func(ctx context.Context) (bool, error) {
		var node corev1.Node
		if err := cp.Client.Get(ctx, client.ObjectKey{Name: c.Name}, &node); err != nil {
			return false, err
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status != corev1.ConditionTrue {
				return false, fmt.Errorf("node %s: %s", cond.Reason, strings.TrimSpace(cond.Message))
			}
			if cond.Type == corev1.NodeReady {
				// Schedulable too: a taint left (not-ready, disk-pressure)
				// would keep every pod Pending without a word.
				if len(node.Spec.Taints) > 0 {
					return false, fmt.Errorf("node is Ready but tainted: %v", node.Spec.Taints)
				}
				return true, nil
			}
		}
		return false, nil
	}, ctdProc, kl)
	if err != nil {
		return nil, fmt.Errorf("the node did not get Ready: %w", err)
	}
	if !cp.scheduling {
		// No leader election (one scheduler), no serving port.
		if _, err := cp.start("kube-scheduler", cp.baseEnv(), filepath.Join(c.Bin, "kube-scheduler"),
			"--kubeconfig="+cp.Kubeconfig, "--leader-elect=false", "--secure-port=0", "--v=1"); err != nil {
			return nil, err
		}
		cp.scheduling = true
	}
	return n, nil
}

// drainNodes deletes every pod and waits (a minute at most) until the
// kubelets have torn them down, so that no container, mount or network
// namespace outlives the stack; cleanUp is the backstop, for pods a
// controller makes again meanwhile too.
func (cp *ControlPlane) drainNodes() {
	if len(cp.nodes) == 0 || cp.Client == nil || cp.down {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var pods corev1.PodList
	if err := cp.Client.List(ctx, &pods); err != nil {
		return
	}
	gone := map[types.UID]bool{}
	for i := range pods.Items {
		gone[pods.Items[i].UID] = false
		_ = cp.Client.Delete(ctx, &pods.Items[i], client.GracePeriodSeconds(0))
	}
	_ = poll(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		var left corev1.PodList
		if err := cp.Client.List(ctx, &left); err != nil {
			return false, err
		}
		for _, p := range left.Items {
			if _, old := gone[p.UID]; old {
				return false, nil
			}
		}
		return true, nil
	})
}

// Down takes the cluster down as an outage would: every component stops
// (the node's pods torn down first); the stack's folder and address stay,
// and servers listening on its ClusterIP keep serving. Stop still cleans
// up.
func (cp *ControlPlane) Down() {
	cp.drainNodes()
	cp.stopProcesses()
	cp.down = true
}

// cleanUp kills what containerd's shims still run for this node (each shim
// is its own process group, outside containerd's), unmounts what is left
// under the node's folder, and deletes its bridge.
func (n *Node) cleanUp() {
	killShims(n.Socket)
	unmountUnder(n.dir)
	_ = exec.Command("ip", "link", "del", n.bridge).Run()
}

// killShims kills every containerd shim serving socket, and what runs
// under it (the containers).
func killShims(socket string) {
	children := map[int][]int{}
	var shims []int
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			// pid (comm) state ppid ...: comm may hold spaces, so read
			// after its closing parenthesis.
			if i := strings.LastIndexByte(string(stat), ')'); i > 0 {
				if f := strings.Fields(string(stat[i+1:])); len(f) > 1 {
					if ppid, err := strconv.Atoi(f[1]); err == nil {
						children[ppid] = append(children[ppid], pid)
					}
				}
			}
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(cmd), "containerd-shim") && strings.Contains(string(cmd), socket) {
			shims = append(shims, pid)
		}
	}
	var kill func(int)
	kill = func(pid int) {
		for _, c := range children[pid] {
			kill(c)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, s := range shims {
		kill(s)
	}
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}
