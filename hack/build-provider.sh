#!/usr/bin/env bash
# Builds the real Proxmox provider stack the control-plane suite runs:
#   provider                  provider-proxmox-bpg v1.18.0 (Upjet, terraform-CLI mode)
#   terraform                 the terraform CLI v1.5.7 (the provider's pin)
#   terraform-provider-proxmox_v0.111.1   bpg's Terraform provider (the provider's pin)
#   crds/                     the provider's package CRDs (usage-tracker CRDs included)
#   plugins/                  a terraform filesystem mirror holding bpg, so init stays offline
# into a cache folder keyed by the sources and this script, so a warm run builds
# nothing. Prints the bin folder on stdout; progress goes to stderr.
#
# The sources are test dependencies kept outside the repo (PROXMOX_SRC_DIR,
# default ../shared/proxmox beside the checkout); terraform comes from the Go
# module proxy at its exact version. About 15 CPU-minutes cold.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${PROXMOX_SRC_DIR:-$(cd "$here/../.." && pwd)/shared/proxmox}
provider_tgz="$src/provider-proxmox-bpg-v1.18.0.tar.gz"
bpg_tgz="$src/terraform-provider-proxmox-v0.111.1.tar.gz"
tf_version=1.5.7
bpg_version=0.111.1
for f in "$provider_tgz" "$bpg_tgz"; do
  [ -f "$f" ] || { echo "build-provider: $f is missing; set PROXMOX_SRC_DIR to the folder holding the provider sources" >&2; exit 2; }
done

key=$( { sha256sum <"$provider_tgz"; sha256sum <"$bpg_tgz"; echo "$tf_version $(go env GOVERSION)"; cat "$0"; } | sha256sum | cut -c1-16)
cache=${HOMELAB_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/homelab-infra/tools}
bin="$cache/provider-$key/bin"
if [ -e "$bin/ok" ]; then echo "$bin"; exit 0; fi

log() { echo "build-provider: $*" >&2; }
mkdir -p "$cache"
# One builder per cache: a second caller (make bench beside make test) waits.
exec 9>"$cache/.provider.lock"
flock 9
if [ -e "$bin/ok" ]; then echo "$bin"; exit 0; fi

work="$cache/provider-$key"
rm -rf "$bin.tmp" "$work/src"
mkdir -p "$bin.tmp" "$work/src"
tar -xzf "$provider_tgz" -C "$work/src"
tar -xzf "$bpg_tgz" -C "$work/src"

# The three builds run side by side: each is mostly compiling, but each ends
# in a single-threaded link that the others can overlap.
export CGO_ENABLED=0
pids=()
( log "building terraform v$tf_version (module proxy)"
  GOBIN="$bin.tmp" go install -trimpath -ldflags "-s -w" "github.com/hashicorp/terraform@v$tf_version"
) & pids+=($!)
( log "building terraform-provider-proxmox v$bpg_version"
  cd "$work/src/terraform-provider-proxmox-v$bpg_version"
  go build -trimpath -ldflags "-s -w -X main.version=$bpg_version" -o "$bin.tmp/terraform-provider-proxmox_v$bpg_version" .
) & pids+=($!)
( log "building provider-proxmox-bpg v1.18.0"
  cd "$work/src/provider-proxmox-bpg-v1.18.0"
  go build -trimpath -ldflags "-s -w" -o "$bin.tmp/provider" ./cmd/provider
) & pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done

# terraform init reads providers only from this mirror (the terraformrc the
# harness writes excludes direct installs), so nothing is fetched.
mirror="$bin.tmp/plugins/registry.terraform.io/bpg/proxmox/$bpg_version/linux_amd64"
mkdir -p "$mirror"
cp "$bin.tmp/terraform-provider-proxmox_v$bpg_version" "$mirror/"
cp -r "$work/src/provider-proxmox-bpg-v1.18.0/package/crds" "$bin.tmp/crds"
rm -rf "$work/src"

touch "$bin.tmp/ok"
rm -rf "$bin"
mv "$bin.tmp" "$bin"
log "done: $bin"
echo "$bin"
