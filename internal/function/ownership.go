package function

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/response"

	"github.com/homelab-infra/homelab-infra/internal/compose"
)

// ConditionVM is the condition the function sets on the XR and its claim
// about whose VM the claim's VM id names: a VM that exists and is not this
// claim's (hand-made, another tool's) is never taken over.
const ConditionVM = "VM"

// Reasons of ConditionVM.
const (
	ReasonChecking = "Checking"
	ReasonForeign  = "NotThisClaims"
	ReasonOwned    = "Owned"
)

// notExist is crossplane-runtime's condition message for an Observe-only
// managed resource whose external resource does not exist
// (pkg/reconciler/managed/reconciler.go, errReconcileObserve wrapping
// errExternalResourceNotExist).
const notExist = "observe failed: external resource does not exist"

// vmOwnership decides what the provider may do to the VM the claim's id
// names. A VM is composed Observe-only first: the provider only reads it.
// It gets every policy once the provider reports that no VM has the id (it
// is then created) or that the VM carries this claim's mark (a management
// cluster rebuilt from Git adopts its own VMs); once it has them it keeps
// them. A VM that exists without the mark, or that the provider may not
// read (outside the project's pool), stays Observe-only: never changed,
// rebooted or destroyed, also when the claim is deleted.
//
// It returns the policies and, for a VM that is not this claim's, why.
func vmOwnership(obs *unstructured.Unstructured, mark string, vmID int64) ([]any, string) {
	if obs == nil {
		return compose.ObservePolicies, ""
	}
	if pols, _, _ := unstructured.NestedSlice(obs.Object, "spec", "managementPolicies"); managesFully(pols) {
		return compose.ManagementPolicies, ""
	}
	desc, _, _ := unstructured.NestedString(obs.Object, "status", "atProvider", "description")
	if strings.Contains(desc, mark) {
		return compose.ManagementPolicies, ""
	}
	synced := condition(obs, "Synced")
	msg := ""
	if synced != nil && synced["status"] == "False" {
		msg = fmt.Sprint(synced["message"])
	}
	switch {
	case strings.Contains(msg, notExist):
		return compose.ManagementPolicies, ""
	case strings.Contains(msg, fmt.Sprintf("Permission check failed (/vms/%d,", vmID)):
		return compose.ObservePolicies, fmt.Sprintf("VM %d exists in Proxmox outside pool %s, so it is not this project's (the provider may not even read it: %s)", vmID, compose.Pool, msg)
	case desc != "" || hasAtProvider(obs):
		return compose.ObservePolicies, fmt.Sprintf("VM %d exists in Proxmox and is not this claim's: its description does not say %q", vmID, mark)
	}
	return compose.ObservePolicies, ""
}

func managesFully(pols []any) bool {
	for _, p := range pols {
		if p == "Create" || p == "*" {
			return true
		}
	}
	return false
}

func hasAtProvider(obs *unstructured.Unstructured) bool {
	at, _, _ := unstructured.NestedMap(obs.Object, "status", "atProvider")
	_, ok := at["vmId"]
	return ok
}

// ownershipCondition tells the claim whose VM its id names, and what failed
// when the provider could not make or change it (failed).
func ownershipCondition(rsp *fnv1.RunFunctionResponse, pols []any, foreign, failed string, vmID int64) {
	switch {
	case foreign != "":
		response.ConditionFalse(rsp, ConditionVM, ReasonForeign).WithMessage(foreign +
			". It is never changed, rebooted or destroyed, also when this claim is deleted. Pick a free spec.proxmox.vmId" +
			" (a new claim: the id cannot be edited), or, if the VM is this machine's, move it into pool " + compose.Pool +
			" and put the mark in its description (README, Foreign VMs)").TargetCompositeAndClaim()
	case managesFully(pols) && failed != "":
		response.ConditionFalse(rsp, ConditionVM, ReasonFailed).WithMessage(failed).TargetCompositeAndClaim()
	case managesFully(pols):
		response.ConditionTrue(rsp, ConditionVM, ReasonOwned).
			WithMessage(fmt.Sprintf("VM %d is this claim's", vmID)).TargetCompositeAndClaim()
	default:
		response.ConditionFalse(rsp, ConditionVM, ReasonChecking).
			WithMessage(fmt.Sprintf("reading VM %d before making or adopting it", vmID)).TargetCompositeAndClaim()
	}
}
