#!/usr/bin/env bash
# Gathers the CRD schemas that deploy/ and crossplane/ are validated against
# (labctl validate --schemas) and that the GitOps test installs, from the
# pinned modules' zips, without building anything:
#   crds/flux/        source-, kustomize- and helm-controller (config/crd/bases)
#   crds/argocd/      Argo CD's Application, ApplicationSet and AppProject
#   crds/crossplane/  Crossplane core's own (cluster/crds)
#   argocd-health/    Argo CD's built-in Lua health checks (resource_customizations),
#                     which internal/argocdhealth runs beside ours
#   argo-workflows/   Argo Workflows' full CRDs, which workflows/ is checked against
#                     (internal/rollout); outside crds/, as labctl validate needs none
# The provider's CRDs are not here: they are generated with it, in provider/package/crds.
# Prints the folder; keyed by the modules' go.mod/go.sum and this script.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools="$here/tools"
mods=(flux-source flux-kustomize gitops-crds crossplane argo)
key=$( { for m in "${mods[@]}"; do cat "$tools/$m/go.mod" "$tools/$m/go.sum"; done; cat "$0"; } | sha256sum | cut -c1-16)
cache=${HOMELAB_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/homelab-infra/tools}
out="$cache/schemas-$key"
if [ -e "$out/ok" ]; then echo "$out"; exit 0; fi

mkdir -p "$cache"
exec 9>"$cache/.schemas.lock"
flock 9
if [ -e "$out/ok" ]; then echo "$out"; exit 0; fi
rm -rf "$out.tmp"
mkdir -p "$out.tmp/crds/flux" "$out.tmp/crds/argocd" "$out.tmp/crds/crossplane"

moddir() { # tools module, module path: the module's unpacked zip
  (cd "$tools/$1" && go mod download "$2" && go list -m -f '{{.Dir}}' "$2")
}
cp "$(moddir flux-source github.com/fluxcd/source-controller)"/config/crd/bases/*.yaml "$out.tmp/crds/flux/"
cp "$(moddir flux-kustomize github.com/fluxcd/kustomize-controller)"/config/crd/bases/*.yaml "$out.tmp/crds/flux/"
cp "$(moddir gitops-crds github.com/fluxcd/helm-controller)"/config/crd/bases/*.yaml "$out.tmp/crds/flux/"
argocd=$(moddir gitops-crds github.com/argoproj/argo-cd/v3)
cp "$argocd"/manifests/crds/*-crd.yaml "$out.tmp/crds/argocd/"
cp -r "$argocd/resource_customizations" "$out.tmp/argocd-health"
cp "$(moddir crossplane github.com/crossplane/crossplane/v2)"/cluster/crds/*.yaml "$out.tmp/crds/crossplane/"
mkdir -p "$out.tmp/argo-workflows"
cp "$(moddir argo github.com/argoproj/argo-workflows/v4)"/manifests/base/crds/full/argoproj.io_*.yaml "$out.tmp/argo-workflows/"
chmod -R u+w "$out.tmp"

touch "$out.tmp/ok"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
