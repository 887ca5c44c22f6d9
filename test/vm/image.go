//go:build vm

package vm

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/testflake"
)

// image is the stand-in template: a cached qcow2 disk and the kernel and
// initrd it boots with.
type image struct {
	disk, kernel, initrd string
}

// buildStatic compiles a program of this module (pkg, such as
// ./cmd/nix-gitops) for the guest: static (the guest's libc is not the
// host's), and reproducible (-trimpath, no VCS stamp), so an unchanged
// program hashes the same and the cached image layer is reused.
func buildStatic(root, dir, pkg, name string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("cannot build %s for the guest: %w: %s", pkg, err, b)
	}
	return out, nil
}

// buildImage runs hack/vm-image.sh, which builds only what is missing from
// its cache, with the agent and the activation stand-in binaries and gen0 (a
// folder testflake.WriteTemplateSystem wrote) as the template's own system.
// Its progress goes to logPath.
func buildImage(root, agent, stc, gen0, logPath string) (image, time.Duration, error) {
	start := time.Now()
	lf, err := os.Create(logPath)
	if err != nil {
		return image{}, 0, err
	}
	defer lf.Close()
	var stdout bytes.Buffer
	cmd := exec.Command(filepath.Join(root, "hack", "vm-image.sh"), "--agent", agent, "--stc", stc, "--template-system", gen0)
	cmd.Stdout, cmd.Stderr = &stdout, lf
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logPath)
		return image{}, 0, fmt.Errorf("cannot build the stand-in template image: %w\n%s", err, b)
	}
	var img image
	for _, l := range strings.Split(stdout.String(), "\n") {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "image":
			img.disk = v
		case "kernel":
			img.kernel = v
		case "initrd":
			img.initrd = v
		}
	}
	if img.disk == "" || img.kernel == "" || img.initrd == "" {
		return image{}, 0, fmt.Errorf("hack/vm-image.sh printed no image=, kernel= and initrd= lines: %q", stdout.String())
	}
	return img, time.Since(start), nil
}

// standIn builds what the suite boots: the agent and the activation
// stand-in for the guest, and the image whose generation 0 is the
// template's own system (template, with moduleUnits). It returns the
// modules renderer for the systems that carry our module's units.
func standIn(t *testing.T, root, dir string, flake *testflake.Repo, hostname string, moduleUnits bool) (*modules, image) {
	t.Helper()
	agent, err := buildStatic(root, dir, "./cmd/nix-gitops", "nix-gitops")
	if err != nil {
		t.Fatal(err)
	}
	stc, err := buildStatic(root, dir, "./test/vm/stc", "switch-to-configuration")
	if err != nil {
		t.Fatal(err)
	}
	m := newModules(t, root, dir, agent)
	gen0 := filepath.Join(dir, "template-system")
	if err := flake.WriteTemplateSystem(gen0, hostname, template(t, m, moduleUnits)); err != nil {
		t.Fatal(err)
	}
	img, took, err := buildImage(root, agent, stc, gen0, filepath.Join(dir, "image.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stand-in template image ready in %s: %s", took.Round(time.Second), img.disk)
	return m, img
}
