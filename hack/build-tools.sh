#!/usr/bin/env bash
# Builds the pinned control-plane binaries (etcd, kube-apiserver,
# kube-controller-manager, kubectl, Crossplane core and the crossplane CLI)
# into a cache folder keyed by the tools modules' go.mod/go.sum, so a warm run
# builds nothing. Prints the bin folder on stdout; progress goes to stderr.
# Crossplane's own CRDs, which `crossplane core init` installs from files,
# are copied from the pinned module into bin/crossplane-crds.
#
# A cold build takes about 15 minutes on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools="$here/tools"
# Keyed by this set's own modules only: the other tools modules (Flux, Vault)
# have caches of their own, so adding one must not rebuild these.
mods=(etcd kube crossplane)
key=$(for m in "${mods[@]}"; do cat "$tools/$m/go.mod" "$tools/$m/go.sum"; done | cat - "$0" | sha256sum | cut -c1-16)
cache=${HOMELAB_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/homelab-infra/tools}
bin="$cache/$key/bin"

want=(etcd kube-apiserver kube-controller-manager kubectl crossplane crossplane-cli)
# bin/ok is written last, once every binary is in place.
if [ -e "$bin/ok" ]; then echo "$bin"; exit 0; fi

log() { echo "build-tools: $*" >&2; }
mkdir -p "$cache"
# One builder per cache: make test's background prebuild and make e2e both
# call this, and two builders sharing $bin.tmp once left a bin folder holding
# only what the second had built (its mv landed after the first's rm).
exec 9>"$cache/.tools.lock"
flock 9
if [ -e "$bin/ok" ]; then echo "$bin"; exit 0; fi

rm -rf "$bin"
mkdir -p "$bin.tmp"

# kube-apiserver must carry a real version, or kubectl cannot parse it.
kv=v1.35.4
kldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kv -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35"

build() { # module dir, output name, package, [ldflags]
  local dir=$1 out=$2 pkg=$3 ldf=${4:-"-s -w"}
  if [ -x "$bin.tmp/$out" ]; then return; fi
  log "building $out ($pkg)"
  (cd "$tools/$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldf" -o "$bin.tmp/$out" "$pkg")
}

build etcd etcd go.etcd.io/etcd/server/v3
build kube kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$kldflags"
build kube kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$kldflags"
build kube kubectl k8s.io/kubernetes/cmd/kubectl "$kldflags"
# Crossplane checks each package's crossplane.version constraint against its
# own version, and an unstamped build has none: every package with a
# constraint would be refused as "incompatible".
xpldflags="-s -w -X github.com/crossplane/crossplane-runtime/v2/pkg/version.version=v2.3.4"
build crossplane crossplane github.com/crossplane/crossplane/v2/cmd/crossplane "$xpldflags"
build crossplane crossplane-cli github.com/crossplane/cli/v2/cmd/crossplane

# core init reads these from CRDS_PATH; in the Crossplane image they are /crds.
xpdir=$(cd "$tools/crossplane" && go list -m -f '{{.Dir}}' github.com/crossplane/crossplane/v2)
rm -rf "$bin.tmp/crossplane-crds"
cp -r "$xpdir/cluster/crds" "$bin.tmp/crossplane-crds"
chmod -R u+w "$bin.tmp/crossplane-crds"

for b in "${want[@]}"; do [ -x "$bin.tmp/$b" ] || { log "$b was not built"; exit 1; }; done
touch "$bin.tmp/ok"
mv "$bin.tmp" "$bin"
log "done: $bin"
echo "$bin"
