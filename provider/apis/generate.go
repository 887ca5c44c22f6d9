//go:build generate

// Regenerates everything under apis/, internal/controller/ and package/crds
// from config/ and bpg's provider at the version go.mod pins:
//
//	cd provider && go generate -tags generate ./apis     (make provider-generate)
//
// The code generators are pinned in go.mod (tools below); goimports, which
// Upjet's pipeline calls by name, is built from the pinned x/tools first.

// Remove what the last run generated.
//go:generate rm -rf ../package/crds
//go:generate bash -c "find . -iname 'zz_*' -delete"
//go:generate bash -c "find . -type d -empty -delete"
//go:generate bash -c "find ../internal/controller -iname 'zz_*' -delete"
//go:generate bash -c "find ../internal/controller -type d -empty -delete"
//go:generate rm -rf ../examples-generated

// Upjet's generator, with goimports on PATH.
//go:generate bash -c "GOBIN=$(mktemp -d) && go install golang.org/x/tools/cmd/goimports && PATH=$GOBIN:$PATH go run ../cmd/generator .."

// Deep-copy methods and the CRD manifests.
//go:generate go run -tags generate sigs.k8s.io/controller-tools/cmd/controller-gen object:headerFile=../hack/boilerplate.go.txt paths=./... crd:allowDangerousTypes=true,crdVersions=v1 output:artifacts:config=../package/crds

// crossplane-runtime's method sets (resource.Managed and the like).
//go:generate go run -tags generate github.com/crossplane/crossplane-tools/cmd/angryjet generate-methodsets --header-file=../hack/boilerplate.go.txt ./...

// Upjet writes example manifests; the repo's own examples are the claims.
//go:generate rm -rf ../examples-generated

package apis

import (
	_ "github.com/crossplane/crossplane-tools/cmd/angryjet"
	_ "golang.org/x/tools/cmd/goimports"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
