package nixcheck

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// templateFacts is nix/template/template.json, which the template's NixOS
// config reads (VM name, VMA file name, cloud-init storage, boot disk, boot
// order, disk size).
type templateFacts struct {
	Image         string `json:"image"`
	TemplateVMID  int64  `json:"templateVmId"`
	Storage       string `json:"storage"`
	DiskInterface string `json:"diskInterface"`
	DiskGiB       int64  `json:"diskGiB"`
	Boot          string `json:"boot"`
}

// TestTemplateMatchesComposition: the VMA the flake builds restores (README,
// qmrestore) under the VM id the Composition clones for its image, with the
// boot disk the Composition sizes and names in the VM's boot order, of the
// size it assumes; and the template boots that disk itself.
func TestTemplateMatchesComposition(t *testing.T) {
	root := testenv.RepoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "nix/template/template.json"))
	if err != nil {
		t.Fatal(err)
	}
	var facts templateFacts
	if err := json.Unmarshal(b, &facts); err != nil {
		t.Fatalf("cannot parse nix/template/template.json: %v", err)
	}
	in, err := repo.LoadInput(filepath.Join(root, repo.CompositionPath))
	if err != nil {
		t.Fatal(err)
	}
	img, ok := in.Images[facts.Image]
	if !ok {
		t.Fatalf("the Composition's function input has no image %q (the template the flake builds); it has: %s. Add it with templateVmId %d, or change nix/template/template.json",
			facts.Image, in.ImageNames(), facts.TemplateVMID)
	}
	if img.TemplateVMID != facts.TemplateVMID {
		t.Errorf("image %s: the Composition clones template VM %d, but the flake's template is built for VM %d (nix/template/template.json): make them equal",
			facts.Image, img.TemplateVMID, facts.TemplateVMID)
	}
	// nixpkgs' proxmox-image.nix writes the disk as drive-virtio0: the
	// template has no other.
	if facts.DiskInterface != "virtio0" {
		t.Errorf("nix/template/template.json: diskInterface is %q, but nixpkgs' Proxmox image (proxmox-image.nix) has its disk on virtio0", facts.DiskInterface)
	}
	if img.DiskInterface != facts.DiskInterface {
		t.Errorf("image %s: the Composition's diskInterface is %q, the template's disk is %q (nix/template/template.json): make them equal, or the class's size goes to a new, empty disk",
			facts.Image, img.DiskInterface, facts.DiskInterface)
	}
	if img.DiskGiB != facts.DiskGiB {
		t.Errorf("image %s: the Composition's diskGiB is %d, the template's disk is %d GiB (nix/template/template.json diskGiB, the VMA's diskSize): make them equal",
			facts.Image, img.DiskGiB, facts.DiskGiB)
	}
	if want := "order=" + facts.DiskInterface; facts.Boot != want {
		t.Errorf("nix/template/template.json: boot is %q; want %q, so the template (and a clone without a boot order) boots its own disk", facts.Boot, want)
	}
	nix, err := os.ReadFile(filepath.Join(root, "nix/template/configuration.nix"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"boot = facts.boot;", "diskSize = toString (facts.diskGiB * 1024);"} {
		if !strings.Contains(string(nix), want) {
			t.Errorf("nix/template/configuration.nix does not set %q: the VMA would not have the boot order or disk size template.json states", want)
		}
	}
}
