// Package runtimeimage builds the OCI runtime image of a composition
// function from its static binary, without Docker: an empty base plus one
// layer holding the binary, as `crossplane xpkg build
// --embed-runtime-image-tarball` takes it. The image is reproducible: the
// same binary gives the same digest (no timestamps, fixed owners).
package runtimeimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Spec says what goes in the image.
type Spec struct {
	// Binary is the static executable, placed at /<Name>.
	Binary []byte
	// Name is the file name and the entrypoint.
	Name string
	// Arch is the GOARCH the binary was built for (amd64, arm64).
	Arch string
	// Ports the function listens on, e.g. "9443/tcp" (gRPC) and "8080/tcp"
	// (metrics), as Crossplane's function runtime expects them.
	Ports []string
	// Labels are OCI annotations for the image config (source, version).
	Labels map[string]string
	// Files are more read-only files, by path without the leading slash
	// (e.g. the CA bundle a provider verifies its API's certificate with).
	Files map[string][]byte
	// Executables are more programs and libraries, by path without the
	// leading slash (HostClosure reads them).
	Executables map[string][]byte
	// ScratchDirs are world-writable, sticky folders (e.g. tmp), for a
	// program that writes its own state, such as SSH's known_hosts.
	ScratchDirs []string
	// Env is the image's environment (KEY=value).
	Env []string
}

// nonRoot is the uid and gid the function runs as: it needs no privilege.
const nonRoot = "65532:65532"

// Build returns the image.
func Build(s Spec) (v1.Image, error) {
	if s.Name == "" || len(s.Binary) == 0 || s.Arch == "" {
		return nil, fmt.Errorf("cannot build an image without a binary, its name and its architecture")
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarOf(s))), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("cannot make the binary's layer: %w", err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, fmt.Errorf("cannot add the binary's layer: %w", err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("cannot read the image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = s.Arch
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Entrypoint = []string{"/" + s.Name}
	cf.Config.User = nonRoot
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = s.Labels
	cf.Config.Env = s.Env
	if len(s.Ports) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range s.Ports {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("cannot set the image config: %w", err)
	}
	return img, nil
}

// WriteTarball writes img as an image tarball tagged ref (a name without a
// registry is fine: the tarball only records it).
func WriteTarball(path, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("cannot parse image name %q: %w", ref, err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		return fmt.Errorf("cannot write the image tarball %s: %w", path, err)
	}
	return nil
}

// tarOf is a tar holding the executable, the extra files and the scratch
// folders, owned by root, with no timestamp, in a fixed order.
func tarOf(s Spec) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	// Errors cannot happen writing to a bytes.Buffer.
	file := func(name string, mode int64, data []byte) {
		_ = tw.WriteHeader(&tar.Header{
			Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg,
			ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
		})
		_, _ = tw.Write(data)
	}
	file(s.Name, 0o755, s.Binary)
	for _, set := range []struct {
		mode  int64
		files map[string][]byte
	}{{0o644, s.Files}, {0o755, s.Executables}} {
		paths := make([]string, 0, len(set.files))
		for p := range set.files {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		for _, p := range paths {
			file(p, set.mode, set.files[p])
		}
	}
	for _, d := range s.ScratchDirs {
		_ = tw.WriteHeader(&tar.Header{
			Name: d + "/", Mode: 0o1777, Typeflag: tar.TypeDir,
			ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
		})
	}
	_ = tw.Close()
	return b.Bytes()
}
