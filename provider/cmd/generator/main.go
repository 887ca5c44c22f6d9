// Command generator runs Upjet's code generation for our provider: the
// managed resource APIs and their controllers, from config.GetProvider (bpg's
// schema at the version go.mod pins). apis/generate.go runs it, then
// controller-gen and angryjet; `make provider-generate` runs that.
//
//	go run ./cmd/generator <provider module root>
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/crossplane/upjet/v2/pkg/pipeline"

	"github.com/homelab-infra/homelab-infra/provider/config"
)

func main() {
	if len(os.Args) != 2 || os.Args[1] == "" {
		fmt.Fprintln(os.Stderr, "usage: generator <provider module root>")
		os.Exit(2)
	}
	root, err := filepath.Abs(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot resolve %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	pc, err := config.GetProvider()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot configure the provider: %v\n", err)
		os.Exit(1)
	}
	// Cluster-scoped kinds only: the Machine XRD is LegacyCluster and
	// composes cluster-scoped managed resources.
	pipeline.Run(pc, nil, root)
}
