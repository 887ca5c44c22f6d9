// Module zips that carry CRDs only, for validating deploy/ offline: Flux's
// helm-controller (HelmRelease) and Argo CD (Application, AppProject,
// ApplicationSet). Nothing here is built: Argo CD cannot be (a nested module's
// pinned pseudo-version is refused by the proxy), so its manifests are checked
// against its CRD schemas instead.
module homelab-infra/hack/tools/gitops-crds

go 1.26.0

require (
	github.com/argoproj/argo-cd/v3 v3.5.7
	github.com/fluxcd/helm-controller v1.6.4
)
