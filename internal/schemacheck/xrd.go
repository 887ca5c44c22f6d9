package schemacheck

import (
	"fmt"
	"os"

	"sigs.k8s.io/yaml"

	"github.com/crossplane/crossplane-runtime/v2/pkg/xcrd"
	xpv1 "github.com/crossplane/crossplane/apis/v2/apiextensions/v1"
	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// ReadXRD reads a CompositeResourceDefinition, rejecting unknown fields.
func ReadXRD(path string) (*xpv1.CompositeResourceDefinition, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read XRD: %w", err)
	}
	xrd := &xpv1.CompositeResourceDefinition{}
	if err := yaml.UnmarshalStrict(b, xrd); err != nil {
		return nil, fmt.Errorf("cannot decode XRD %s: %w", path, err)
	}
	return xrd, nil
}

// XRDCRDs returns the CRDs Crossplane generates from an XRD, with the same
// code Crossplane uses: the composite resource's and the claim's.
func XRDCRDs(xrd *xpv1.CompositeResourceDefinition) (xr, claim *extv1.CustomResourceDefinition, err error) {
	xr, err = xcrd.ForCompositeResource(xrd)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot derive the composite resource CRD from XRD %s: %w", xrd.GetName(), err)
	}
	claim, err = xcrd.ForCompositeResourceClaim(xrd)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot derive the claim CRD from XRD %s: %w", xrd.GetName(), err)
	}
	return xr, claim, nil
}

// ForXRD returns validators for the XR and the claim an XRD defines (its
// first version).
func ForXRD(path string) (xr, claim *Validator, err error) {
	xrd, err := ReadXRD(path)
	if err != nil {
		return nil, nil, err
	}
	xrCRD, claimCRD, err := XRDCRDs(xrd)
	if err != nil {
		return nil, nil, err
	}
	xrs, err := New(xrCRD)
	if err != nil {
		return nil, nil, err
	}
	claims, err := New(claimCRD)
	if err != nil {
		return nil, nil, err
	}
	return xrs[0], claims[0], nil
}
