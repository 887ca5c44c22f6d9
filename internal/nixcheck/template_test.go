package nixcheck

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
	SCSIHardware  string `json:"scsiHardware"`
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
	if img.SCSIHardware != facts.SCSIHardware {
		t.Errorf("image %s: the Composition's scsiHardware is %q, the template's controller is %q (nix/template/template.json): make them equal, or adopting a VM reboots it to change its controller",
			facts.Image, img.SCSIHardware, facts.SCSIHardware)
	}
	if img.DiskGiB != facts.DiskGiB {
		t.Errorf("image %s: the Composition's diskGiB is %d, the template's disk is %d GiB (nix/template/template.json diskGiB, the VMA's diskSize): make them equal",
			facts.Image, img.DiskGiB, facts.DiskGiB)
	}
	if want := "order=" + facts.DiskInterface; facts.Boot != want {
		t.Errorf("nix/template/template.json: boot is %q; want %q, so the template (and a clone without a boot order) boots its own disk", facts.Boot, want)
	}
}

// TestTemplateEvaluates evaluates the template as the flake composes it,
// against NixOS's option data and nixpkgs' proxmox-image.nix as it is on
// the 26.05 line (testdata/proxmox-image.nix: that module's stand-in, read
// at Swarsel/nixpkgs 4aa6836a648ca76c68866decf0c8965e36ec2a3b, file
// nixos/modules/virtualisation/proxmox-image.nix): since 24.11 the disk size
// is virtualisation.diskSize, "auto" or a positive integer of MiB
// (mkRenamedOptionModuleWith from proxmox.qemuConf.diskSize, so a string
// there fails the evaluation), and the VMA carries the VM's boot order,
// disk, name and file name that template.json states.
func TestTemplateEvaluates(t *testing.T) {
	root := testenv.RepoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "nix/template/template.json"))
	if err != nil {
		t.Fatal(err)
	}
	var facts templateFacts
	if err := json.Unmarshal(b, &facts); err != nil {
		t.Fatal(err)
	}
	var got struct {
		DiskSize       any      `json:"diskSize"`
		Boot           string   `json:"boot"`
		Virtio0        string   `json:"virtio0"`
		SCSIHW         string   `json:"scsihw"`
		Name           string   `json:"name"`
		FilenameSuffix string   `json:"filenameSuffix"`
		Storage        string   `json:"storage"`
		Timeout        *int     `json:"timeout"`
		Warnings       []string `json:"warnings"`
	}
	body := `let c = r.eval.config; in {
	  diskSize = c.virtualisation.diskSize;
	  inherit (c.proxmox.qemuConf) boot virtio0 name scsihw;
	  inherit (c.proxmox) filenameSuffix;
	  storage = c.proxmox.cloudInit.defaultStorage;
	  timeout = c.boot.loader.timeout;
	  warnings = c.warnings;
	}`
	if err := evalNixOS(t, machineModules(t, "template"), body, &got); err != nil {
		t.Fatalf("the template does not evaluate against nixpkgs' proxmox-image.nix and NixOS's option data: %v", err)
	}
	if want := float64(facts.DiskGiB * 1024); got.DiskSize != want {
		t.Errorf("virtualisation.diskSize = %#v, want %v (MiB, an integer: template.json's diskGiB)", got.DiskSize, want)
	}
	if len(got.Warnings) > 0 {
		t.Errorf("evaluating the template warns: %q", got.Warnings)
	}
	if got.Boot != facts.Boot || got.Virtio0 != fmt.Sprintf("%s:vm-%d-disk-0", facts.Storage, facts.TemplateVMID) || got.Storage != facts.Storage {
		t.Errorf("proxmox.qemuConf boot %q, virtio0 %q, cloud-init storage %q: want template.json's %q and %s's disk", got.Boot, got.Virtio0, got.Storage, facts.Boot, facts.Storage)
	}
	if got.SCSIHW != facts.SCSIHardware {
		t.Errorf("proxmox.qemuConf.scsihw = %q, want template.json's scsiHardware %q", got.SCSIHW, facts.SCSIHardware)
	}
	// proxmox-image.nix names the VMA vzdump-qemu-<filenameSuffix>.vma.zst
	// (image.baseName), which qmrestore reads the VM id from.
	if want := fmt.Sprintf("%d-%s", facts.TemplateVMID, facts.Image); got.FilenameSuffix != want || got.Name != facts.Image+"-template" {
		t.Errorf("filenameSuffix %q and name %q, want %q and %q", got.FilenameSuffix, got.Name, want, facts.Image+"-template")
	}
	// proxmox-image.nix sets boot.loader.timeout = 0: no GRUB menu, so no
	// older generation to boot by hand. The boot menu is the seed's safety
	// net; every machine must keep it.
	if got.Timeout == nil || *got.Timeout <= 0 {
		t.Errorf("boot.loader.timeout = %v: the GRUB menu is not reachable; older generations cannot be chosen at boot", got.Timeout)
	}
}
