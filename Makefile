# homelab-infra: the two commands a new user needs are `make demo` and
# `make test`; both set up what they need on a fresh Debian machine.

GO       ?= go
BIN      := $(CURDIR)/bin
# The provider's CRDs are read from the shared folder beside the checkout,
# never copied into this repo.
export PROVIDER_CRDS_DIR ?= $(abspath $(CURDIR)/../shared/provider-proxmox-bpg/crds)

FUZZTIME ?= 10s

.PHONY: all build demo deps tools unit test test-go e2e vm-e2e fuzz bench clean nix-vendor-hash

all: build

## build: compile labctl, function-machine and nix-gitops into ./bin
build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

## demo: validate the bundled example repo, then render every claim
demo: build
	$(BIN)/labctl validate
	$(BIN)/labctl render

## deps: install the Debian packages the tests use (idempotent)
deps:
	@hack/deps.sh

## tools: build the pinned control-plane binaries (cached; ~15 min cold)
tools:
	@hack/build-tools.sh

## unit: the fast inner loop; real-component tests skip under -short
unit:
	$(GO) test -short ./...

## test: everything CI runs: unit and real-component tests, control plane, VM
test: deps
	$(MAKE) test-go
	$(MAKE) fuzz
	$(MAKE) e2e
	$(MAKE) vm-e2e

# Without -short a missing real component fails its test (internal/testenv).
test-go:
	$(GO) vet ./...
	$(GO) test ./...

## e2e: claims through a real kube-apiserver, etcd and Crossplane core
e2e: deps
	TOOLS_BIN=$$(hack/build-tools.sh) $(GO) test -tags e2e -count=1 -timeout 30m ./test/e2e/...

## vm-e2e: a claim's cloud-init boots a real guest that converges from Git
# -v: the image build and each TCG boot take minutes; their times show in CI.
vm-e2e: deps build
	$(GO) test -tags vm -count=1 -timeout 40m -v ./test/vm/...

## nix-vendor-hash: rewrite the flake's Go vendor hashes (nix/pkgs/vendor-hashes.json) after go.mod/go.sum change
nix-vendor-hash: deps
	$(GO) test -count=1 -run 'TestVendorHashes$$' ./internal/nixcheck -update

## fuzz: a short run of every fuzz target
fuzz:
	@hack/fuzz.sh $(FUZZTIME)

## bench: benchmarks; figures are printed, never asserted
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./...
	TOOLS_BIN=$$(hack/build-tools.sh) $(GO) test -tags e2e -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/e2e/...

clean:
	rm -rf $(BIN)
