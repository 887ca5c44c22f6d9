#!/usr/bin/env bash
# Builds the real parts of the rollout suite (test/rollout) from pinned tools
# modules, each into a cache folder keyed by its module, this script and the
# Go version, so a warm run builds nothing:
#
#   prometheus  Prometheus (hack/tools/prometheus, module v0.316.0 = Prometheus 3.x),
#               without the cloud service discoveries (build tag remove_all_sd); the
#               rollout suite runs it. Cold: 5.5 CPU-minutes.
#   kubelet     the kubelet and kube-scheduler v1.35.4 (hack/tools/kubelet): a real node
#               for Argo's step pods, and what places them on it (1 CPU-minute after
#               hack/build-tools.sh, whose kube-apiserver shares most packages; about 10 alone)
#   argo        Argo Workflows v4.0.5's workflow-controller and argoexec (hack/tools/argo),
#               and the module's CRDs: crds/ the full ones (schema checks), crds-minimal/
#               the ones Argo's install manifests apply (a cluster). Cold: 13.4 CPU-minutes.
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

kubelet() {
  local v="-s -w -X k8s.io/component-base/version.gitVersion=v1.35.4 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35"
  gobuild kubelet "$1/kubelet" k8s.io/kubernetes/cmd/kubelet -ldflags "$v"
  gobuild kubelet "$1/kube-scheduler" k8s.io/kubernetes/cmd/kube-scheduler -ldflags "$v"
}

argo() {
  local mod=github.com/argoproj/argo-workflows/v4
  gobuild argo "$1/workflow-controller" $mod/cmd/workflow-controller
  # argoexec: upstream's workflow/executor/osspecific/signal_linux.go is a
  # symlink to signal_darwin.go, and module zips drop symlinks, so the zip
  # alone stops at "undefined: Setpgid". Build it from a copy of the
  # module the proxy served, with the link's target in place of the link,
  # through a go.mod that replaces the module with that copy.
  local src ver
  src=$(cd "$tools/argo" && go mod download -json $mod | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  ver=$(basename "$src")
  rm -rf "$1/.src"
  mkdir -p "$1/.src"
  cp -r "$src" "$1/.src/$ver"
  chmod -R u+w "$1/.src/$ver"
  local os="$1/.src/$ver/workflow/executor/osspecific"
  [ ! -e "$os/signal_linux.go" ] || { log "$ver now ships signal_linux.go: drop the copy"; exit 1; }
  cp "$os/signal_darwin.go" "$os/signal_linux.go"
  { cat "$tools/argo/go.mod"; echo "replace $mod => $1/.src/$ver"; } >"$1/.src/go.mod"
  cp "$tools/argo/go.sum" "$1/.src/go.sum"
  gobuild argo "$1/argoexec" $mod/cmd/argoexec -modfile "$1/.src/go.mod"
  cp -r "$src/manifests/base/crds/full" "$1/crds"
  cp -r "$src/manifests/base/crds/minimal" "$1/crds-minimal"
  chmod -R u+w "$1/crds" "$1/crds-minimal"
  rm -rf "$1/.src"
}

prometheus() {
  gobuild prometheus "$1/prometheus" github.com/prometheus/prometheus/cmd/prometheus -tags remove_all_sd
}

part() { # name: builds it unless cached, prints its bin folder
  local name=$1 key bin
  case "$name" in kubelet | argo | prometheus) ;; *) log "unknown part $name (kubelet, argo, prometheus)"; exit 2 ;; esac
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

[ $# -gt 0 ] || set -- prometheus kubelet argo
for p in "$@"; do part "$p"; done
