package runtimeimage

import (
	"archive/tar"
	"io"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestBuild(t *testing.T) {
	spec := Spec{Binary: []byte("\x7fELF stand-in"), Name: "function-machine", Arch: "arm64", Ports: []string{"9443/tcp"}}
	a, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Errorf("two builds of the same binary differ: %s and %s; the image must be reproducible", da, db)
	}

	cf, err := a.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	type config struct {
		OS, Arch, User string
		Entrypoint     []string
		Ports          map[string]struct{}
	}
	want := config{OS: "linux", Arch: "arm64", User: "65532:65532", Entrypoint: []string{"/function-machine"}, Ports: map[string]struct{}{"9443/tcp": {}}}
	got := config{OS: cf.OS, Arch: cf.Architecture, User: cf.Config.User, Entrypoint: cf.Config.Entrypoint, Ports: cf.Config.ExposedPorts}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("image config (-want, +got):\n%s", diff)
	}

	// The tarball round-trips, and its one layer holds the executable.
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := WriteTarball(path, "homelab-infra/function-machine:v0.1.0", a); err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The tarball format re-encodes the manifest, so compare the image ID.
	ca, _ := a.ConfigName()
	if c, _ := img.ConfigName(); c != ca {
		t.Errorf("tarball image config = %s, want %s", c, ca)
	}
	tr := onlyLayer(t, img)
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(tr)
	if h.Name != "function-machine" || h.Mode != 0o755 || string(data) != string(spec.Binary) {
		t.Errorf("layer entry = %s mode %o (%d bytes), want function-machine 755 with the binary", h.Name, h.Mode, len(data))
	}
}

// TestBuildProviderExtras: the provider's image also carries the CA bundle
// (read-only), a sticky world-writable tmp for bpg's known_hosts, and HOME.
func TestBuildProviderExtras(t *testing.T) {
	spec := Spec{
		Binary: []byte("\x7fELF stand-in"), Name: "provider", Arch: "amd64",
		Files:       map[string][]byte{"etc/ssl/certs/ca-certificates.crt": []byte("PEM")},
		ScratchDirs: []string{"tmp"},
		Env:         []string{"HOME=/tmp"},
	}
	img, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(spec.Env, cf.Config.Env); diff != "" {
		t.Errorf("Env (-want, +got):\n%s", diff)
	}
	type entry struct {
		Name string
		Mode int64
		Dir  bool
	}
	var got []entry
	tr := onlyLayer(t, img)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, entry{h.Name, h.Mode, h.Typeflag == tar.TypeDir})
	}
	want := []entry{{"provider", 0o755, false}, {"etc/ssl/certs/ca-certificates.crt", 0o644, false}, {"tmp/", 0o1777, true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layer entries (-want, +got):\n%s", diff)
	}
}

// onlyLayer reads the image's one layer.
func onlyLayer(t *testing.T, img v1.Image) *tar.Reader {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d (%v), want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	return tar.NewReader(rc)
}
