#!/usr/bin/env bash
# Builds our Proxmox provider (provider/: Upjet no-fork over bpg's Terraform
# provider, every dependency from the Go module proxy at the versions
# provider/go.mod pins) into a cache folder keyed by the provider's files
# (its tests and CRDs aside: they are not in the binary), the Go version and
# this script, so a warm run builds nothing. Prints the bin folder (holding
# `provider`) on stdout; progress goes to stderr.
#
# The control-plane suite runs this binary; its CRDs are the generated ones
# in provider/package/crds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/provider"
key=$( { (cd "$src" && find . -type f ! -path './package/crds/*' ! -name '*_test.go' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum);
         go env GOVERSION; cat "$0"; } | sha256sum | cut -c1-16)
cache=${HOMELAB_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/homelab-infra/tools}
bin="$cache/provider-$key/bin"
if [ -e "$bin/ok" ]; then echo "$bin"; exit 0; fi

log() { echo "build-provider: $*" >&2; }
mkdir -p "$cache"
# One builder per cache: a second caller (make bench beside make test) waits.
exec 9>"$cache/.provider.lock"
flock 9
if [ -e "$bin/ok" ]; then echo "$bin"; exit 0; fi

rm -rf "$bin.tmp"
mkdir -p "$bin.tmp"
log "building the provider ($key)"
start=$(date +%s)
(cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin.tmp/provider" ./cmd/provider)
touch "$bin.tmp/ok"
rm -rf "$bin"
mv "$bin.tmp" "$bin"
log "done in $(( $(date +%s) - start ))s: $bin"
echo "$bin"
