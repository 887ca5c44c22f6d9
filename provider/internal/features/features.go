// Package features names the provider's feature flags, for the generated
// controllers.
package features

import "github.com/crossplane/crossplane-runtime/v2/pkg/feature"

// EnableBetaManagementPolicies lets a managed resource choose the actions
// the provider may take (the Machine API leaves out LateInitialize).
const EnableBetaManagementPolicies feature.Flag = "EnableBetaManagementPolicies"
