// Package function is function-machine's logic (decision D2): it reads an
// XMachine and the function input (classes, images, site defaults), and
// returns the desired File and VirtualMachine, the XR's status and
// the composed resources' readiness. cmd/function-machine serves it over
// gRPC; labctl render calls it in-process, so both print the same thing.
//
// One stage a file: the input (input.go), the Secret with the admin keys
// (secret.go), the identities only one machine may hold (identity.go), what
// the provider reports of this one's resources (observed.go), the XR's
// status (status.go), the machine's running state from its agent
// (running.go).
package function

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/crossplane/function-sdk-go/logging"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/response"

	"github.com/homelab-infra/homelab-infra/internal/cloudinit"
	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// ConditionValid is the condition the function sets on the XR and its claim:
// False, with the message naming the field and the fix, when it refuses the
// Machine; True once it composes it. Crossplane sets Synced=False on the XR
// only, so without it the claim would show no sign of a refusal but an event.
const ConditionValid = "Valid"

// Reasons of ConditionValid.
const (
	ReasonValid   = "Composed"
	ReasonInvalid = "Refused"
)

// SSHKeysRequirement is the name under which the function asks Crossplane for
// the Secret named by spec.bootstrap.sshAuthorizedKeysSecretRef.
const SSHKeysRequirement = "ssh-authorized-keys"

// Function composes Machines.
type Function struct {
	fnv1.UnimplementedFunctionRunnerServiceServer

	Log logging.Logger
}

// RunFunction runs the function once: one XMachine in, its resources out. A
// bad claim or input yields a Fatal result naming the field and no resources.
func (f *Function) RunFunction(_ context.Context, req *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error) {
	rsp := response.To(req, response.DefaultTTL)
	log := f.Log
	if log == nil {
		log = logging.NewNopLogger()
	}

	in, err := Input(req)
	if err != nil {
		fatal(rsp, fmt.Errorf("cannot read the function input in the Composition: %w", err))
		return rsp, nil
	}

	// The request's Structs are decoded directly (decode.go) and the
	// response built with structpb: the SDK's helpers go through
	// protojson, which was most of the function's time (see
	// BenchmarkRunFunction).
	xr := req.GetObserved().GetComposite().GetResource()
	oxr := compositeOf(xr)
	xrName, _, _ := unstructured.NestedString(oxr, "metadata", "name")
	log = log.WithValues("xr", xrName)

	xrUID, _, _ := unstructured.NestedString(oxr, "metadata", "uid")
	specSrc := xr.GetFields()["spec"].GetStructValue()
	spec, host := validSpecs.get(xrUID, specSrc, in)
	if spec == nil {
		var err error
		if spec, err = specOf(xr); err != nil {
			fatal(rsp, fmt.Errorf("invalid Machine %s, nothing composed:\n%w", xrName, err))
			return rsp, nil
		}
		if errs := machine.Validate(spec, in); len(errs) > 0 {
			log.Info("Invalid Machine", "errors", len(errs))
			fatal(rsp, fmt.Errorf("invalid Machine %s, nothing composed:\n%w", xrName, errs))
			return rsp, nil
		}
		host = hostOf(spec) // parsed once: runningState and setRunning both need it
		validSpecs.put(xrUID, specSrc, in, spec, host)
	}

	// Crossplane fetches what the function requires and calls again before
	// it applies anything; until then compose nothing.
	ids := compose.Identities(spec)
	taken, haveIDs := identities(req, rsp, ids, xrUID)
	keys, haveKeys := secretKeys(req, rsp, spec, oxr)
	vaultFile, haveVault := vaultBootstrap(req, rsp, spec, oxr)
	running := runningState(req, rsp, host, oxr)
	if !haveIDs || !haveKeys || !haveVault {
		return rsp, nil
	}
	if len(taken) > 0 {
		fatal(rsp, fmt.Errorf("invalid Machine %s, nothing composed:\n%w", xrName, taken))
		return rsp, nil
	}

	m, err := machine.ResolveValid(spec, in, keys)
	if err != nil {
		fatal(rsp, fmt.Errorf("invalid Machine %s, nothing composed:\n%w", xrName, err))
		return rsp, nil
	}
	ud := UserDataConfig(m)
	ud.VaultBootstrap = vaultFile
	userData, err := cloudinit.Render(ud)
	if err != nil {
		fatal(rsp, err)
		return rsp, nil
	}

	obs := observe(req)
	disk := m.Class.DiskGiB
	if got := obs.diskGiB(m.Image.DiskInterface); got > disk {
		// Proxmox cannot shrink a disk (resize_vm refuses), so asking for
		// the class's size would fail every reconcile.
		disk = got
		response.Warning(rsp, fmt.Errorf("spec.class: class %s has a %d GiB disk, but the VM's disk is already %d GiB and Proxmox cannot shrink a disk; it stays at %d GiB while cores and memory follow the class", spec.Class, m.Class.DiskGiB, got, got)).TargetCompositeAndClaim()
	}
	owner := claimOf(oxr, xrName)
	pols, foreign := vmOwnership(obs.vm, compose.Mark(owner), *spec.Proxmox.VMID)
	var enc structBuilder
	rendered := string(userData)
	c := composeMachine(&enc, machineArgs{xrName: xrName, owner: owner, m: m, userData: rendered, diskGiB: disk, spec: spec, obs: obs, pols: pols})
	if len(c.fileKept) > 0 {
		response.Warning(rsp, fmt.Errorf("the VM's user-data changed (the keys in its Secret, or the Composition's defaults), but user-data is read at first boot only: the VM keeps what it was created with (%v). Change the running machine in nix/hosts/%s instead", c.fileKept, m.Hostname)).TargetCompositeAndClaim()
	}
	if len(c.vmKept) > 0 {
		response.Warning(rsp, fmt.Errorf("the Composition's defaults for this machine changed, but %v are fixed when a VM is created: the VM keeps its own", c.vmKept)).TargetCompositeAndClaim()
	}
	if len(c.defaultsKept) > 0 {
		response.Warning(rsp, fmt.Errorf("the Composition's defaults changed %v, which would reboot this VM or move its NIC: defaults apply to machines created from now on, and this VM keeps its own. To change it, set the value in its claim (spec.proxmox.bridge, spec.network.dns; a new domain, CPU type or SCSI controller needs a new machine)", c.defaultsKept)).TargetCompositeAndClaim()
	}
	if c.movedTo != "" {
		migrationWarning(rsp, *spec.Proxmox.VMID, c.movedTo, c.fileNode, c.fileDatastore)
	}

	if rsp.Desired == nil {
		rsp.Desired = &fnv1.State{}
	}
	if rsp.Desired.Resources == nil {
		rsp.Desired.Resources = map[string]*fnv1.Resource{}
	}
	held := allHeld(req, ids)
	holder := holderName(oxr, xrName)
	for _, id := range ids {
		ready := fnv1.Ready_READY_FALSE
		if _, ok := req.GetObserved().GetResources()[id.Name]; ok {
			ready = fnv1.Ready_READY_TRUE
		}
		if st := leaseStruct(&enc, id, holder); st != nil {
			rsp.Desired.Resources[id.Name] = &fnv1.Resource{Resource: st, Ready: ready}
		} else if err := enc.desire(rsp, id.Name, compose.IdentityObject(id, holder), ready); err != nil {
			fatal(rsp, err)
			return rsp, nil
		}
	}
	switch {
	case held:
		if err := desireStruct(rsp, compose.UserData, c.file, c.fileErr, obs.fileReady()); err != nil {
			fatal(rsp, err)
			return rsp, nil
		}
		// The VM reads its snippet when it starts, and bpg starts it as
		// soon as it is cloned: compose it only once the snippet exists (or
		// when the VM does, so that it is never dropped).
		if obs.vm != nil || obs.fileReady() == fnv1.Ready_READY_TRUE {
			if err := desireStruct(rsp, compose.VM, c.vm, c.vmErr, obs.vmReady()); err != nil {
				fatal(rsp, err)
				return rsp, nil
			}
		}
		userDataCondition(rsp, m, obs)
		if rsp.GetDesired().GetResources()[compose.VM] != nil {
			ownershipCondition(rsp, pols, foreign, vmFailure(obs.vm, *spec.Proxmox.VMID, m.Proxmox.Node), *spec.Proxmox.VMID)
		}
	default:
		// Until every identity is this XR's, nothing changes in Proxmox:
		// a new machine gets no snippet or VM, and an existing one keeps
		// its resources and the values it holds exactly as they are (an
		// edit of its host name or address waits for the new value to be
		// held; then the old one is let go).
		if err := holdAsObserved(&enc, req, rsp, obs); err != nil {
			fatal(rsp, err)
			return rsp, nil
		}
	}

	if err := enc.setStatus(rsp, status(m, c, obs.vmStatus(), rendered)); err != nil {
		fatal(rsp, fmt.Errorf("cannot set the XMachine's status: %w", err))
		return rsp, nil
	}
	if err := setRunning(&enc, rsp, running, host, time.Now()); err != nil {
		fatal(rsp, fmt.Errorf("cannot set the XMachine's running state: %w", err))
		return rsp, nil
	}
	response.ConditionTrue(rsp, ConditionValid, ReasonValid).TargetCompositeAndClaim()
	log.Debug("Composed Machine", "hostname", m.Hostname, "node", m.Proxmox.Node)
	return rsp, nil
}

// desire adds one composed resource to the response. Resources of earlier
// pipeline steps, copied by response.To, stay.
func (b *structBuilder) desire(rsp *fnv1.RunFunctionResponse, name string, obj *unstructured.Unstructured, ready fnv1.Ready) error {
	st, err := b.newStruct(obj.Object)
	return desireStruct(rsp, name, st, err, ready)
}

// desireStruct is desire for a resource already encoded as st, or not
// encodable (err).
func desireStruct(rsp *fnv1.RunFunctionResponse, name string, st *structpb.Struct, err error, ready fnv1.Ready) error {
	if err != nil {
		return fmt.Errorf("cannot encode composed resource %s: %w", name, err)
	}
	rsp.Desired.Resources[name] = &fnv1.Resource{Resource: st, Ready: ready}
	return nil
}

// claimOf names the Machine claim behind the XR as namespace/name. Crossplane
// names a claim's XR <claim>-<random>, which nobody reading the VM in Proxmox
// would recognise; an XR made without a claim is named by itself.
func claimOf(xr map[string]any, xrName string) string {
	ns, _, _ := unstructured.NestedString(xr, "spec", "claimRef", "namespace")
	name, _, _ := unstructured.NestedString(xr, "spec", "claimRef", "name")
	if ns == "" || name == "" {
		return xrName
	}
	return ns + "/" + name
}

// fatal records a Fatal result for the XR and its claim, so `kubectl describe
// machine` shows the message naming the field.
func fatal(rsp *fnv1.RunFunctionResponse, err error) {
	// Crossplane turns a Fatal result into an event and Synced=False on the
	// XR only, whatever its target; results before it become events on the
	// claim too. So the same message goes first as a Warning.
	response.Warning(rsp, err).TargetCompositeAndClaim()
	response.ConditionFalse(rsp, ConditionValid, ReasonInvalid).WithMessage(err.Error()).TargetCompositeAndClaim()
	response.Fatal(rsp, err)
	rsp.Results[len(rsp.Results)-1].Target = fnv1.Target_TARGET_COMPOSITE_AND_CLAIM.Enum()
}

// SpecOf reads the Machine spec out of an XR or claim object. Fields that
// Crossplane adds to the spec (claimRef, compositionRef, ...) are ignored.
func SpecOf(obj map[string]any) (*machine.Spec, error) {
	raw, ok := obj["spec"]
	if !ok {
		return nil, fmt.Errorf("spec is missing")
	}
	return machine.SpecFrom(raw)
}

// UserDataConfig is what cloud-init is told about m.
func UserDataConfig(m *machine.Resolved) cloudinit.Config {
	return cloudinit.Config{
		Hostname:  m.Hostname,
		FQDN:      m.FQDN,
		AdminUser: m.Bootstrap.AdminUser,
		Keys:      m.Keys,
		FlakeRef:  m.Nix.FlakeRef,
	}
}
