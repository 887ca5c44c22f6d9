//go:build rollout

package rollout

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-infra/homelab-infra/internal/runtimeimage"
	"github.com/homelab-infra/homelab-infra/test/harness"
)

// pauseSource is the sandbox's process: it waits to be stopped.
const pauseSource = `package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
`

// Image names as the manifests carry them; the node pulls both registries
// from the tests' loopback one.
const (
	labRegistry = "registry.lab.home.arpa"
	pauseImage  = "registry.k8s.io/pause:harness"
	labctlImage = labRegistry + "/homelab-infra/labctl:v0.1.0"
	k8sRegistry = "registry.k8s.io"
)

// goBinary builds a static Go program (a package folder or a main file).
func goBinary(t testing.TB, pkg, name string) []byte {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cannot build %s: %v\n%s", pkg, err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// push writes img to the loopback registry under ref's repository and tag
// (ref's own registry host is what the node's mirror replaces), with the
// crossplane CLI's push, as hack/packages.sh pushes images.
func push(t testing.TB, reg *harness.Registry, ref string, img v1.Image) {
	t.Helper()
	tarball := filepath.Join(t.TempDir(), "image.tar")
	if err := runtimeimage.WriteTarball(tarball, ref, img); err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(ref, "/")
	cli := filepath.Join(os.Getenv("TOOLS_BIN"), "crossplane-cli")
	if out, err := exec.Command(cli, "xpkg", "push", "-f", tarball, reg.Host+"/"+rest).CombinedOutput(); err != nil {
		t.Fatalf("cannot push %s: %v\n%s", ref, err, out)
	}
}

// startNode starts the stack's node, pulling images from reg.
func startNode(ctx context.Context, t testing.TB, cp *harness.ControlPlane, reg *harness.Registry) *harness.Node {
	t.Helper()
	bin := os.Getenv("KUBELET_BIN")
	if bin == "" {
		t.Fatal("KUBELET_BIN is not set: run make rollout-e2e, or KUBELET_BIN=$(hack/build-rollout.sh kubelet)")
	}
	src := filepath.Join(t.TempDir(), "pause.go")
	if err := os.WriteFile(src, []byte(pauseSource), 0o644); err != nil {
		t.Fatal(err)
	}
	pause, err := runtimeimage.Build(runtimeimage.Spec{Binary: goBinary(t, src, "pause"), Name: "pause", Arch: runtime.GOARCH})
	if err != nil {
		t.Fatal(err)
	}
	push(t, reg, pauseImage, pause)
	mirror := "http://" + reg.Host
	n, err := cp.StartNode(ctx, harness.NodeConfig{Name: "node1", Bin: bin, SandboxImage: pauseImage,
		Mirrors: map[string]string{labRegistry: mirror, k8sRegistry: mirror}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestNodeRunsAPod: the harness's node (a real kubelet with containerd and
// runc, kube-scheduler placing pods) runs a pod of an image the node pulls
// from the loopback registry, to completion. Not parallel: TestArgo's node
// would share its name, bridge and subnet.
func TestNodeRunsAPod(t *testing.T) {
	tools := os.Getenv("TOOLS_BIN")
	if tools == "" {
		t.Fatal("TOOLS_BIN is not set: run make rollout-e2e")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	reg, err := harness.StartRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	img, err := runtimeimage.Build(runtimeimage.Spec{Binary: goBinary(t, "../../cmd/labctl", "labctl"), Name: "labctl", Arch: runtime.GOARCH})
	if err != nil {
		t.Fatal(err)
	}
	push(t, reg, labctlImage, img)

	cp, err := harness.Start(ctx, harness.Config{ToolsBin: tools, Logf: t.Logf, InCluster: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	defer func() {
		if t.Failed() {
			t.Log(cp.Tails(40))
		}
	}()
	startNode(ctx, t, cp, reg)

	no := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, AutomountServiceAccountToken: &no,
			Containers: []corev1.Container{{Name: "labctl", Image: labctlImage, Args: []string{"version"}}}},
	}
	if err := cp.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	for {
		if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
			t.Fatal(err)
		}
		if pod.Status.Phase == corev1.PodSucceeded {
			return
		}
		if pod.Status.Phase == corev1.PodFailed || ctx.Err() != nil {
			t.Fatalf("pod: %s %s %+v", pod.Status.Phase, pod.Status.Message, pod.Status.ContainerStatuses)
		}
		time.Sleep(time.Second)
	}
}
