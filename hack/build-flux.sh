#!/usr/bin/env bash
# Builds real Flux for the GitOps end-to-end test: source-controller and
# kustomize-controller from their pinned tools modules (hack/tools/flux-*),
# into a cache folder keyed by those modules and this script, so a warm run
# builds nothing. Their CRDs come from hack/schemas.sh.
# Prints the bin folder on stdout; progress goes to stderr. About 20
# CPU-minutes cold.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools="$here/tools"
mods=(flux-source flux-kustomize)
key=$( { for m in "${mods[@]}"; do cat "$tools/$m/go.mod" "$tools/$m/go.sum"; done; go env GOVERSION; cat "$0"; } | sha256sum | cut -c1-16)
cache=${HOMELAB_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/homelab-infra/tools}
bin="$cache/flux-$key/bin"
if [ -e "$bin/ok" ]; then echo "$bin"; exit 0; fi

log() { echo "build-flux: $*" >&2; }
mkdir -p "$cache"
exec 9>"$cache/.flux.lock"
flock 9
if [ -e "$bin/ok" ]; then echo "$bin"; exit 0; fi
rm -rf "$bin.tmp"
mkdir -p "$bin.tmp"

export CGO_ENABLED=0
build() { # module dir, output name, package
  log "building $2 ($3)"
  (cd "$tools/$1" && go build -trimpath -ldflags "-s -w" -o "$bin.tmp/$2" "$3")
}
build flux-source source-controller github.com/fluxcd/source-controller &
p1=$!
build flux-kustomize kustomize-controller github.com/fluxcd/kustomize-controller
wait "$p1"

touch "$bin.tmp/ok"
rm -rf "$bin"
mv "$bin.tmp" "$bin"
log "done: $bin"
echo "$bin"
