#!/usr/bin/env bash
# Builds the real parts of the rollout suite (test/rollout) from pinned tools
# modules, each into a cache folder keyed by its module, this script and the
# Go version, so a warm run builds nothing:
#
#   prometheus  Prometheus (hack/tools/prometheus, module v0.316.0 = Prometheus 3.x),
#               without the cloud service discoveries (build tag remove_all_sd)
#
#   hack/build-rollout.sh [part...]   prints each part's bin folder, one a line, in the order asked
#                                     (all of them when none is named); progress goes to stderr
#
# Each part holds its own lock, so make test's background prebuild and a suite
# that needs the part never build it twice. Cold, on 2 shared cores: see the
# README's rollout section for the measured figures.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools="$here/tools"
cache=${HOMELAB_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/homelab-infra/tools}
mkdir -p "$cache"
export CGO_ENABLED=0

log() { echo "build-rollout: $*" >&2; }

gobuild() { # module dir, output, package, [extra go build flags...]
  local dir=$1 out=$2 pkg=$3
  log "building $(basename "$out") ($pkg)"
  (cd "$tools/$dir" && go build -trimpath -ldflags "-s -w" "${@:4}" -o "$out" "$pkg")
}

prometheus() {
  gobuild prometheus "$1/prometheus" github.com/prometheus/prometheus/cmd/prometheus -tags remove_all_sd
}

part() { # name: builds it unless cached, prints its bin folder
  local name=$1 key bin
  case "$name" in prometheus) ;; *) log "unknown part $name (prometheus)"; exit 2 ;; esac
  key=$( { cat "$tools/$name/go.mod" "$tools/$name/go.sum"; go env GOVERSION; cat "$0"; } | sha256sum | cut -c1-16)
  bin="$cache/$name-$key/bin"
  if [ ! -e "$bin/ok" ]; then
    exec 9>"$cache/.$name.lock"
    flock 9
    if [ ! -e "$bin/ok" ]; then
      local start=$SECONDS
      rm -rf "$bin.tmp"
      mkdir -p "$bin.tmp"
      "$name" "$bin.tmp"
      touch "$bin.tmp/ok"
      rm -rf "$bin"
      mv "$bin.tmp" "$bin"
      log "$name done in $((SECONDS - start)) s: $bin"
    fi
    exec 9>&-
  fi
  echo "$bin"
}

[ $# -gt 0 ] || set -- prometheus
for p in "$@"; do part "$p"; done
