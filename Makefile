# homelab-infra: the two commands a new user needs are `make demo` and
# `make test`; both set up what they need on a fresh Debian machine.

GO       ?= go
BIN      := $(CURDIR)/bin
# Our provider's CRDs, generated with it (provider/, make provider-generate).
PROVIDER_CRDS_DIR := $(CURDIR)/provider/package/crds
# The provider module's vet, tests and generators build as hack/build-provider.sh
# and hack/packages.sh do (cgo off, -trimpath: both change every package's
# build ID), so all of them share one compile of bpg, Upjet and Kubernetes in
# Go's build cache. Cold, that compile is the longest build of make test;
# with other flags it would be done twice.
PROVIDER_GO := CGO_ENABLED=0 GOFLAGS=-trimpath $(GO)
# One set of Go build flags for everything built from this module, the set
# hack/packages.sh and the test harnesses' own `go build`s use (cgo off, as in
# the distroless images and the guest; -trimpath). Both are part of every
# package's build ID: with the defaults beside them, a cold run compiled the
# module's dependencies (Kubernetes, Crossplane, gRPC, Vault's client) once per
# combination, up to four times.
export CGO_ENABLED := 0
export GOFLAGS := -trimpath $(GOFLAGS)
# Proxmox VE's published API schema (pve-docs' apidata.js, PVE 9.1 and 8.4),
# which the Proxmox simulator checks every call against (test/proxmoxsim).
export PVE_API_DIR ?= $(abspath $(CURDIR)/../shared/pve-api)

# An execution count per target, never a duration (see hack/fuzz.sh).
FUZZTIME ?= 20000x

.PHONY: all build demo validate deps tools vault unit test test-go e2e vault-e2e rollout-e2e vm-e2e fuzz bench clean nix-vendor-hash packages push provider provider-generate

all: build

## build: compile labctl, function-machine and nix-gitops into ./bin
build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

## demo: validate the bundled example repo, then render every claim; needs only Go and the module proxy
# The provider's CRDs are in the repo (provider/package/crds), so a fresh
# clone checks its kinds too.
demo: validate
	$(BIN)/labctl render

## validate: labctl validate, with deploy/ and crossplane/ checked against the real CRDs
# (Flux's, Argo CD's and Crossplane's from their pinned modules, hack/schemas.sh; the provider's)
validate: build
	$(BIN)/labctl validate --schemas "$$(hack/schemas.sh)/crds" --schemas "$(PROVIDER_CRDS_DIR)"

## packages: the function (amd64, arm64) and Configuration xpkgs, offline, into bin/packages
packages:
	hack/packages.sh $(BIN)/packages

## push: build the packages and push them to the names the manifests install (REGISTRY=host[:port] pushes elsewhere)
push:
	hack/packages.sh --push $(if $(REGISTRY),--registry $(REGISTRY)) $(BIN)/packages

## deps: install the Debian packages the tests use (idempotent)
deps:
	@hack/deps.sh

## tools: build the pinned control-plane binaries (cached; ~15 min cold)
tools:
	@hack/build-tools.sh

## vault: build the pinned Vault server the secrets tests run (cached; ~10 min cold)
vault:
	@hack/build-vault.sh

## unit: the fast inner loop; real-component tests skip under -short
# The provider is a Go module of its own (provider/go.mod says why).
unit:
	$(GO) test -short ./...
	cd provider && $(PROVIDER_GO) test -short ./...

## provider: build our Proxmox provider (cached by content; hack/build-provider.sh)
provider:
	@hack/build-provider.sh

## provider-generate: regenerate the provider's APIs, controllers and CRDs from provider/config and the pinned bpg
provider-generate:
	cd provider && $(PROVIDER_GO) generate -tags generate ./apis

## test: everything CI runs: unit and real-component tests, fuzzing, control plane, Vault, rollouts, VM
# The slow pinned builds start in the background (hack/prebuild.sh) and
# overlap the unit tests; each suite's build script then returns at once or
# waits for the build in flight (they are cached and flock-protected).
# After the unit tests the suites run side by side (SUITE_JOBS at a time;
# 1 runs them one after another): they wait on controllers, pollers and
# guests far more than on a core (a warm make e2e kept the 2 cores 4-25%
# busy for most of its 13 minutes), and each starts its own processes on its
# own ports, addresses and folders. Each suite's output is printed whole when
# it ends (--output-sync).
SUITE_JOBS ?= 6
test: deps
	@mkdir -p $(BIN)
	@hack/prebuild.sh 2>$(BIN)/prebuild.log &
	$(MAKE) test-go
	$(MAKE) -j$(SUITE_JOBS) --output-sync=target fuzz e2e vault-e2e rollout-e2e vm-e2e

# Without -short a missing real component fails its test (internal/testenv).
# -timeout: go test's default 10 minutes per package is too short for
# cmd/nix-gitops' real git and nix runs on a loaded 2-core machine; a hang
# still fails, with every goroutine's stack.
test-go:
	$(GO) vet ./...
	$(GO) test -timeout 30m ./...
	@# The provider's build (the prebuild lane's, or this one) compiles the
	@# dependencies its vet and tests need: cold, they wait for it, not redo it.
	@hack/build-provider.sh >/dev/null
	cd provider && $(PROVIDER_GO) vet ./... && $(PROVIDER_GO) test -timeout 30m ./...

## e2e: claims through a real kube-apiserver, etcd, Crossplane core and our provider, against a Proxmox API simulator
# -parallel: most tests wait on the provider and the simulated guests, not the CPU.
e2e: deps
	TOOLS_BIN=$$(hack/build-tools.sh) PROVIDER_BIN=$$(hack/build-provider.sh) FLUX_BIN=$$(hack/build-flux.sh) \
	  $(GO) test -tags e2e -count=1 -parallel 8 -timeout 45m ./test/e2e/...

## vault-e2e: the secrets tests on a real Vault (tag vault), the last one on the real control plane too
# Every Vault-backed test is named TestVault*; the packages also hold
# untagged tests, which test-go runs.
VAULT_PKGS := ./internal/vault/... ./internal/agent/secrets/... ./cmd/nix-gitops/
vault-e2e: deps
	$(GO) vet -tags vault ./... && $(GO) vet -tags 'e2e vault' ./test/e2e/
	VAULT_BIN=$$(hack/build-vault.sh) $(GO) test -tags vault -count=1 -run '^TestVault' -timeout 20m $(VAULT_PKGS)
	TOOLS_BIN=$$(hack/build-tools.sh) PROVIDER_BIN=$$(hack/build-provider.sh) VAULT_BIN=$$(hack/build-vault.sh) $(GO) test -tags 'e2e vault' -count=1 -run '^TestVault' -timeout 30m ./test/e2e/

## rollout-e2e: rollouts of a fleet of real agents (processes on loopback), read through a real Prometheus:
## by labctl, and by the WorkflowTemplate on real Argo Workflows with a real node
# And Argo's lock manager, as workflows/rollout.yaml relies on it: beside
# the suite (its compile and its seconds of tests overlap the suite's waits
# for step pods), once the builds are done (hack/build-rollout.sh's flags:
# the controller's build is reused, not raced); its output follows the
# suite's.
rollout-e2e: deps
	@mkdir -p $(BIN)
	prom=$$(hack/build-rollout.sh prometheus) && tools=$$(hack/build-tools.sh) && \
	  kubelet=$$(hack/build-rollout.sh kubelet) && argo=$$(hack/build-rollout.sh argo) || exit 1; \
	(cd hack/tools/argo && $(GO) test -count=1 .) >$(BIN)/argo-locks.log 2>&1 & locks=$$!; \
	PROMETHEUS_BIN=$$prom/prometheus TOOLS_BIN=$$tools KUBELET_BIN=$$kubelet ARGO_BIN=$$argo \
	  $(GO) test -tags rollout -count=1 -timeout 60m -v ./test/rollout/...; suite=$$?; \
	wait $$locks; lrc=$$?; echo "hack/tools/argo (Argo's lock manager):"; cat $(BIN)/argo-locks.log; \
	[ $$suite = 0 ] && [ $$lrc = 0 ]

## vm-e2e: a claim's cloud-init boots a real guest that converges from Git
# -v: the image build and each TCG boot take minutes; their times show in CI.
# One package (test/vm/stc, the activation stand-in the suite builds, has no
# tests): with two, go test held the whole -v output back until the end.
vm-e2e: deps build
	$(GO) test -tags vm -count=1 -timeout 75m -v ./test/vm/

## nix-vendor-hash: rewrite the flake's Go vendor hashes (nix/pkgs/vendor-hashes.json) after go.mod/go.sum change
nix-vendor-hash: deps
	$(GO) test -count=1 -run 'TestVendorHashes$$' ./internal/nixcheck -update

## fuzz: a short run of every fuzz target
fuzz:
	@hack/fuzz.sh $(FUZZTIME)

## bench: benchmarks; figures are printed, never asserted
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./...
	TOOLS_BIN=$$(hack/build-tools.sh) PROVIDER_BIN=$$(hack/build-provider.sh) $(GO) test -tags e2e -run '^$$' -bench . -benchtime 1x -timeout 60m ./test/e2e/...
	VAULT_BIN=$$(hack/build-vault.sh) $(GO) test -tags vault -run '^$$' -bench Vault -benchtime 20x $(VAULT_PKGS)
	PROMETHEUS_BIN=$$(hack/build-rollout.sh prometheus)/prometheus $(GO) test -tags rollout -run '^$$' -bench . -benchtime 1x ./test/rollout/

clean:
	rm -rf $(BIN)
