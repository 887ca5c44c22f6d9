package nixcheck

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// templateFacts is nix/template/template.json, which the template's NixOS
// config reads (VM name, VMA file name, cloud-init storage).
type templateFacts struct {
	Image        string `json:"image"`
	TemplateVMID int64  `json:"templateVmId"`
	Storage      string `json:"storage"`
}

// TestTemplateMatchesComposition: the VMA the flake builds restores (README,
// qmrestore) under the VM id the Composition clones for its image.
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
}
