// Command runtimeimage writes the OCI runtime image of a static binary (the
// function's, the provider's, or labctl's for the rollout workflow's steps,
// with this host's git beside it) as an image tarball
// (internal/runtimeimage), for hack/packages.sh.
//
//	go run ./hack/runtimeimage --binary bin/linux-amd64/function-machine --arch amd64 \
//	  --ref homelab-infra/function-machine:v0.1.0 --out image.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

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
	ports := flag.String("ports", "9443/tcp,8080/tcp", "the ports the program listens on, comma-separated (\"\" for none)")
	hostPrograms := flag.String("host-programs", "", "programs of this host to add with their shared libraries, comma-separated (the rollout steps' git)")
	flag.Parse()
	if err := run(*bin, *arch, *ref, *out, *source, *caBundle, *tmp, *ports, *hostPrograms); err != nil {
		fmt.Fprintln(os.Stderr, "runtimeimage:", err)
		os.Exit(1)
	}
}

func run(bin, arch, ref, out, source, caBundle string, tmp bool, ports, hostPrograms string) error {
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
		Labels: labels,
	}
	if ports != "" {
		spec.Ports = strings.Split(ports, ",")
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
	if hostPrograms != "" {
		c, err := runtimeimage.HostClosure(strings.Split(hostPrograms, ",")...)
		if err != nil {
			return err
		}
		spec.Executables = c.Executables
		var path []string
		for _, p := range strings.Split(hostPrograms, ",") {
			if d := filepath.Dir(p); !slices.Contains(path, d) {
				path = append(path, d)
			}
		}
		spec.Env = append(spec.Env, "PATH="+strings.Join(path, ":"), "LD_LIBRARY_PATH="+c.LibraryPath)
	}
	img, err := runtimeimage.Build(spec)
	if err != nil {
		return err
	}
	return runtimeimage.WriteTarball(out, ref, img)
}
