// Command runtimeimage writes the OCI runtime image of a static binary (the
// function's or the provider's) as an image tarball (internal/runtimeimage),
// for hack/packages.sh.
//
//	go run ./hack/runtimeimage --binary bin/linux-amd64/function-machine --arch amd64 \
//	  --ref homelab-infra/function-machine:v0.1.0 --out image.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/homelab-infra/homelab-infra/internal/runtimeimage"
)

func main() {
	bin := flag.String("binary", "", "the static binary to put in the image")
	arch := flag.String("arch", "", "its GOARCH (amd64, arm64)")
	ref := flag.String("ref", "", "the image name recorded in the tarball, e.g. homelab-infra/function-machine:v0.1.0")
	out := flag.String("out", "", "the image tarball to write")
	source := flag.String("source", "", "the OCI source label (org.opencontainers.image.source)")
	caBundle := flag.String("ca-bundle", "", "a CA bundle to put at /etc/ssl/certs/ca-certificates.crt (the provider's, for Proxmox's TLS)")
	tmp := flag.Bool("tmp", false, "add a writable /tmp and set HOME=/tmp (the provider keeps SSH's known_hosts there)")
	flag.Parse()
	if err := run(*bin, *arch, *ref, *out, *source, *caBundle, *tmp); err != nil {
		fmt.Fprintln(os.Stderr, "runtimeimage:", err)
		os.Exit(1)
	}
}

func run(bin, arch, ref, out, source, caBundle string, tmp bool) error {
	if bin == "" || arch == "" || ref == "" || out == "" {
		return fmt.Errorf("--binary, --arch, --ref and --out are required")
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("cannot read the binary: %w", err)
	}
	labels := map[string]string{}
	if source != "" {
		labels["org.opencontainers.image.source"] = source
	}
	spec := runtimeimage.Spec{
		Binary: data,
		Name:   filepath.Base(bin),
		Arch:   arch,
		Ports:  []string{"9443/tcp", "8080/tcp"},
		Labels: labels,
	}
	if caBundle != "" {
		pem, err := os.ReadFile(caBundle)
		if err != nil {
			return fmt.Errorf("cannot read the CA bundle: %w", err)
		}
		spec.Files = map[string][]byte{"etc/ssl/certs/ca-certificates.crt": pem}
	}
	if tmp {
		spec.ScratchDirs = []string{"tmp"}
		spec.Env = []string{"HOME=/tmp", "TMPDIR=/tmp"}
	}
	img, err := runtimeimage.Build(spec)
	if err != nil {
		return err
	}
	return runtimeimage.WriteTarball(out, ref, img)
}
