#!/usr/bin/env bash
# Builds the Crossplane packages of this repo offline, without Docker:
#   function-machine-<arch>.xpkg   the function, its runtime image embedded
#                                  (amd64 and arm64; internal/runtimeimage)
#   provider-proxmox-<arch>.xpkg   our Proxmox provider (provider/), its
#                                  generated CRDs and its runtime image
#                                  (with Debian's CA bundle, for Proxmox's TLS);
#                                  PROVIDER_ARCHS (default "amd64 arm64") picks
#                                  the architectures: the provider is a large
#                                  build, and a test on this machine needs one
#   configuration.xpkg             crossplane/: the XRD and the Composition,
#                                  depending on the provider and the function
#   labctl-image.tar               the rollout workflow's step image: labctl and
#                                  this host's git with its shared libraries
#                                  (the driver runs the git command-line tool),
#                                  for this host's architecture only
# with the crossplane CLI the tests pin (hack/build-tools.sh). PACKAGES
# (default "function provider configuration step") picks which: a test
# stack builds only what it pulls (TestArgo: the step image).
#
#   hack/packages.sh [OUT]                                build into OUT (default bin/packages)
#   hack/packages.sh --push [--registry HOST[:PORT]] [OUT]   build, then push
#
# They are pushed to the names the manifests install them by
# (crossplane/functions.yaml and crossplane/provider/provider.yaml: one
# index for both architectures; deploy/configuration.yaml; workflows/rollout.yaml's
# image), or with REGISTRY in place of those names' registry host (e.g. a
# loopback registry in the tests).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
push= registry=
while [ $# -gt 0 ]; do
  case $1 in
    --push) push=1; shift ;;
    --registry) registry=${2:?"--registry needs HOST[:PORT]"}; shift 2 ;;
    -*) echo "usage: $0 [--push [--registry HOST[:PORT]]] [OUT]" >&2; exit 2 ;;
    *) break ;;
  esac
done
out=$(mkdir -p "${1:-$root/bin/packages}" && cd "${1:-$root/bin/packages}" && pwd)
tools=${TOOLS_BIN:-$("$root/hack/build-tools.sh")}
xp="$tools/crossplane-cli"
log() { echo "packages: $*" >&2; }

# The packages' names, from the manifests that install them.
pkgname() { sed -n 's/^ *package: *//p' "$1"; }
fn_pkg=$(pkgname "$root/crossplane/functions.yaml")
pv_pkg=$(pkgname "$root/crossplane/provider/provider.yaml")
cfg_pkg=$(pkgname "$root/deploy/configuration.yaml")
[ -n "$fn_pkg" ] && [ -n "$pv_pkg" ] && [ -n "$cfg_pkg" ] || { echo "packages: cannot read spec.package from crossplane/functions.yaml, crossplane/provider/provider.yaml and deploy/configuration.yaml" >&2; exit 1; }
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca_bundle" ] || { echo "packages: $ca_bundle is missing (Debian's ca-certificates; hack/deps.sh installs it)" >&2; exit 1; }
step_img=$(sed -n 's/^ *image: *//p' "$root/workflows/rollout.yaml" | sort -u)
[ "$(echo "$step_img" | wc -l)" = 1 ] && [ -n "$step_img" ] || { echo "packages: workflows/rollout.yaml must name one step image, not: $step_img" >&2; exit 1; }
# REGISTRY replaces the first path segment (the registry host).
to() { if [ -n "$registry" ]; then echo "$registry/${1#*/}"; else echo "$1"; fi; }

packages=" ${PACKAGES:-function provider configuration step} "
[ -n "${packages// /}" ] || { echo "packages: PACKAGES names none" >&2; exit 2; }
for p in $packages; do
  case $p in function|provider|configuration|step) ;; *) echo "packages: PACKAGES names $p; want function, provider, configuration or step" >&2; exit 2 ;; esac
done
want() { [[ $packages == *" $1 "* ]]; }
built=()

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fn_files=() pv_files=()
provider_archs=" ${PROVIDER_ARCHS:-amd64 arm64} "
for arch in amd64 arm64; do
  mkdir -p "$tmp/$arch"
  if want function; then
    log "function-machine for linux/$arch"
    (cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags "-s -w" -o "$tmp/$arch/function-machine" ./cmd/function-machine)
    (cd "$root" && go run ./hack/runtimeimage --binary "$tmp/$arch/function-machine" --arch "$arch" \
      --ref "$fn_pkg" --source github.com/homelab-infra/homelab-infra --out "$tmp/$arch/image.tar")
    "$xp" xpkg build --package-root="$root/crossplane/package" --examples-root="$tmp/no-examples" \
      --embed-runtime-image-tarball="$tmp/$arch/image.tar" -o "$out/function-machine-$arch.xpkg" >&2
    fn_files+=("$out/function-machine-$arch.xpkg")
  fi

  want provider && [[ $provider_archs == *" $arch "* ]] || continue
  log "provider-proxmox for linux/$arch"
  (cd "$root/provider" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags "-s -w" -o "$tmp/$arch/provider" ./cmd/provider)
  (cd "$root" && go run ./hack/runtimeimage --binary "$tmp/$arch/provider" --arch "$arch" \
    --ref "$pv_pkg" --source github.com/homelab-infra/homelab-infra --ca-bundle "$ca_bundle" --tmp --out "$tmp/$arch/provider-image.tar")
  "$xp" xpkg build --package-root="$root/provider/package" --examples-root="$tmp/no-examples" \
    --embed-runtime-image-tarball="$tmp/$arch/provider-image.tar" -o "$out/provider-proxmox-$arch.xpkg" >&2
  pv_files+=("$out/provider-proxmox-$arch.xpkg")
done

if want configuration; then
  log "configuration"
  # The package holds the meta file, xrd.yaml, composition.yaml and
  # provider/activation.yaml (the provider kinds to activate); the claims go
  # in as examples, and the rest is for Flux/Argo CD or another package.
  "$xp" xpkg build --package-root="$root/crossplane" --examples-root="$root/crossplane/claims" \
    --ignore='claims/*,package/*,functions.yaml,kustomization.yaml,provider/provider.yaml,provider/providerconfig.yaml,provider/kustomization.yaml' \
    -o "$out/configuration.xpkg" >&2
  built+=("$out/configuration.xpkg")
fi

if want step; then
  arch=$(go env GOARCH)
  gitexec=$(git --exec-path)
  log "the rollout step image for linux/$arch, with $(git --version)"
  mkdir -p "$tmp/step"
  (cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/step/labctl" ./cmd/labctl)
  (cd "$root" && go run ./hack/runtimeimage --binary "$tmp/step/labctl" --arch "$arch" --ref "$step_img" \
    --source github.com/homelab-infra/homelab-infra --tmp --ports "" --ca-bundle "$ca_bundle" \
    --host-programs "$(command -v git),$gitexec/git-remote-http,$gitexec/git-remote-https" --out "$out/labctl-image.tar")
  built+=("$out/labctl-image.tar")
fi

if [ -n "$push" ]; then
  if [ ${#fn_files[@]} -gt 0 ]; then
    log "pushing $(to "$fn_pkg")"
    (IFS=,; "$xp" xpkg push -f "${fn_files[*]}" "$(to "$fn_pkg")" >&2)
  fi
  if [ ${#pv_files[@]} -gt 0 ]; then
    log "pushing $(to "$pv_pkg")"
    (IFS=,; "$xp" xpkg push -f "${pv_files[*]}" "$(to "$pv_pkg")" >&2)
  fi
  if want configuration; then
    log "pushing $(to "$cfg_pkg")"
    "$xp" xpkg push -f "$out/configuration.xpkg" "$(to "$cfg_pkg")" >&2
  fi
  if want step; then
    log "pushing $(to "$step_img")"
    # A plain image: xpkg push writes any OCI image tarball.
    "$xp" xpkg push -f "$out/labctl-image.tar" "$(to "$step_img")" >&2
  fi
fi
ls "${fn_files[@]}" "${pv_files[@]}" "${built[@]}"
