#!/usr/bin/env bash
# Builds the pinned Vault server (v1.14.1, hack/vault/go.mod) that the secrets
# tests run as `vault server -dev` on loopback, into a cache folder keyed by the
# module's go.mod/go.sum, this script and the Go version, so a warm run builds
# nothing. Prints the bin folder on stdout; progress goes to stderr.
#
# A cold build takes about 16 CPU-minutes (about 10 minutes on 2 idle cores)
# and 2.9 GB of compiler memory; the binary is 183 MB stripped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod="$here/tools/vault"
key=$( { cat "$mod/go.mod" "$mod/go.sum" "$0"; go env GOVERSION; } | sha256sum | cut -c1-16)
cache=${HOMELAB_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/homelab-infra/tools}
bin="$cache/vault-$key/bin"
if [ -x "$bin/vault" ]; then echo "$bin"; exit 0; fi

log() { echo "build-vault: $*" >&2; }
mkdir -p "$cache"
# One builder per cache folder: a second caller (make bench beside make test,
# or another engineer's checkout) waits for the first and then reuses its build.
exec 9>"$cache/.vault.lock"
flock 9
if [ -x "$bin/vault" ]; then echo "$bin"; exit 0; fi

rm -rf "$bin.tmp"
mkdir -p "$bin.tmp"
log "building vault v1.14.1 (about 10 minutes cold)"
# No `ui` tag: the server serves the UI stub, which the tests never open.
(cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin.tmp/vault" github.com/hashicorp/vault)
rm -rf "$bin"
mv "$bin.tmp" "$bin"
log "done: $bin"
echo "$bin"
