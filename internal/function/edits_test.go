package function

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/repo"
)

// runWith runs the function on the dns01 claim, edited, with what is
// observed and the other XMachines Crossplane found.
func runWith(t *testing.T, edit func(xr map[string]any), observed map[string]map[string]any, others []map[string]any) *fnv1.RunFunctionResponse {
	t.Helper()
	claims, input := exampleClaims(t)
	xr := repo.XRFor(claims["dns01"])
	xr["metadata"].(map[string]any)["creationTimestamp"] = "2026-06-01T10:00:00Z"
	if edit != nil {
		edit(xr)
	}
	req, err := NewRequest(xr, input, observed, map[string][]map[string]any{MachinesRequirement: others})
	if err != nil {
		t.Fatal(err)
	}
	rsp, err := (&Function{}).RunFunction(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return rsp
}

func otherXR(name, created, hostname, ip string, vmID int64, deleting bool) map[string]any {
	meta := map[string]any{"name": name, "creationTimestamp": created}
	if deleting {
		meta["deletionTimestamp"] = "2026-06-02T00:00:00Z"
	}
	return map[string]any{
		"apiVersion": "homelab.dev/v1alpha1", "kind": "XMachine", "metadata": meta,
		"spec": map[string]any{
			"hostname": hostname, "claimRef": map[string]any{"namespace": "team", "name": name},
			"network": map[string]any{"ip": ip, "cidr": "10.0.10.0/24", "gateway": "10.0.10.1"},
			"proxmox": map[string]any{"vmId": vmID},
		},
	}
}

func composedXR(xr map[string]any) map[string]any {
	xr["spec"].(map[string]any)["resourceRefs"] = []any{map[string]any{"kind": "VirtualMachine", "name": "x-vm"}}
	return xr
}

func refusedXR(xr map[string]any) map[string]any {
	xr["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Valid", "status": "False", "reason": "Refused"}}}
	return xr
}

func warnings(rsp *fnv1.RunFunctionResponse) string {
	return messages(rsp, fnv1.Severity_SEVERITY_WARNING)
}

// TestConflicts: another XMachine (from any repository) already holding the
// VM id, host name or static address makes the newer claim Fatal, naming
// the field and the other machine; the older one is unaffected.
func TestConflicts(t *testing.T) {
	cases := map[string]struct {
		reason    string
		others    []map[string]any
		wantFatal []string
	}{
		"None": {
			reason: "no other machine",
		},
		"SameVMIDOlder": {
			reason:    "an older machine has the VM id",
			others:    []map[string]any{otherXR("x", "2026-05-01T00:00:00Z", "x", "10.0.10.60", 1053, false)},
			wantFatal: []string{"spec.proxmox.vmId: 1053 is already the VM id of Machine team/x"},
		},
		"SameVMIDNewer": {
			reason: "a newer machine with the same id is the one refused, not this one",
			others: []map[string]any{otherXR("x", "2026-07-01T00:00:00Z", "x", "10.0.10.60", 1053, false)},
		},
		"SameTimeByName": {
			reason:    "created in the same second: the name decides, the same way every time",
			others:    []map[string]any{otherXR("a-older-name", "2026-06-01T10:00:00Z", "x", "10.0.10.60", 1053, false)},
			wantFatal: []string{"spec.proxmox.vmId"},
		},
		"NewerButComposed": {
			reason:    "a newer machine that already has its VM keeps the id",
			others:    []map[string]any{composedXR(otherXR("x", "2026-07-01T00:00:00Z", "x", "10.0.10.60", 1053, false))},
			wantFatal: []string{"spec.proxmox.vmId: 1053 is already the VM id of Machine team/x"},
		},
		"OlderButRefused": {
			reason: "an older machine the function refused (and so composed nothing) holds nothing",
			others: []map[string]any{refusedXR(otherXR("x", "2026-05-01T00:00:00Z", "x", "10.0.10.60", 1053, false))},
		},
		"Deleting": {
			reason: "a machine being deleted gives its id back",
			others: []map[string]any{otherXR("x", "2026-05-01T00:00:00Z", "dns01", "10.0.10.53", 1053, true)},
		},
		"SameHostnameAndIP": {
			reason:    "host name and address clash too; each is named",
			others:    []map[string]any{otherXR("x", "2026-05-01T00:00:00Z", "dns01", "10.0.10.53", 2000, false)},
			wantFatal: []string{"spec.hostname: dns01 is already the host name of Machine team/x", "spec.network.ip: 10.0.10.53 is already the address of Machine team/x"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := runWith(t, nil, nil, tc.others)
			got := fatals(rsp)
			if len(tc.wantFatal) == 0 {
				if got != "" {
					t.Errorf("%s: unexpected Fatal: %s", tc.reason, got)
				}
				if rsp.GetDesired().GetResources()["user-data"] == nil {
					t.Errorf("%s: nothing composed", tc.reason)
				}
				return
			}
			for _, w := range tc.wantFatal {
				if !strings.Contains(got, w) {
					t.Errorf("%s: want a Fatal containing %q, got %q", tc.reason, w, got)
				}
			}
			if n := len(rsp.GetDesired().GetResources()); n != 0 {
				t.Errorf("%s: composed %d resources for a refused machine", tc.reason, n)
			}
		})
	}
}

// TestNoComposeUntilOthersKnown: without the other machines the function
// asks for them and composes nothing (it cannot yet tell a clash).
func TestNoComposeUntilOthersKnown(t *testing.T) {
	claims, input := exampleClaims(t)
	req, err := NewRequest(repo.XRFor(claims["dns01"]), input, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rsp, err := (&Function{}).RunFunction(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	sel := rsp.GetRequirements().GetResources()[MachinesRequirement]
	if sel.GetKind() != "XMachine" || sel.GetMatchLabels() == nil {
		t.Errorf("want a requirement for every XMachine, got %v", sel)
	}
	if n := len(rsp.GetDesired().GetResources()); n != 0 {
		t.Errorf("composed %d resources before the other machines were known", n)
	}
}

// observedBig is a VM whose disk Proxmox reports at 64 GiB.
func observedBig(t *testing.T) map[string]map[string]any {
	t.Helper()
	vm := observedVM("dns01")
	vm["status"].(map[string]any)["atProvider"].(map[string]any)["disk"] = []any{map[string]any{"interface": "virtio0", "size": 64}}
	obs := SnippetUploaded(runWith(t, nil, nil, nil))
	obs["vm"] = vm
	return obs
}

// TestDiskNeverShrinks: a smaller class keeps the VM's disk at its size, says
// so, and still changes cores and memory.
func TestDiskNeverShrinks(t *testing.T) {
	rsp := runWith(t, nil, observedBig(t), nil) // dns01 is class small: 16 GiB
	vm := rsp.GetDesired().GetResources()["vm"].GetResource().AsMap()
	disks, _, _ := unstructured.NestedSlice(vm, "spec", "forProvider", "disk")
	if got := disks[0].(map[string]any)["size"]; got != 64.0 {
		t.Errorf("disk size: want the VM's 64 GiB, got %v", got)
	}
	cores, _, _ := unstructured.NestedSlice(vm, "spec", "forProvider", "cpu")
	if got := cores[0].(map[string]any)["cores"]; got != 1.0 {
		t.Errorf("cores: want the class's 1, got %v", got)
	}
	if w := warnings(rsp); !strings.Contains(w, "spec.class: class small has a 16 GiB disk, but the VM's disk is already 64 GiB") {
		t.Errorf("want a warning naming spec.class, got %q", w)
	}
	if f := fatals(rsp); f != "" {
		t.Errorf("unexpected Fatal: %s", f)
	}
}

// TestUserDataIsFirstBootOnly: once the snippet exists its content and
// placement stay as created, whatever renders now (a Secret's keys changed,
// a Composition default moved), and the claim is told why.
func TestUserDataIsFirstBootOnly(t *testing.T) {
	obs := SnippetUploaded(runWith(t, nil, nil, nil))
	file := obs["user-data"]
	raw, _, _ := unstructured.NestedSlice(file, "spec", "forProvider", "sourceRaw")
	raw[0].(map[string]any)["data"] = "#cloud-config\nhostname: as-created\n"
	_ = unstructured.SetNestedSlice(file, raw, "spec", "forProvider", "sourceRaw")
	_ = unstructured.SetNestedField(file, "pve0", "spec", "forProvider", "nodeName")

	rsp := runWith(t, nil, obs, nil)
	got := rsp.GetDesired().GetResources()["user-data"].GetResource().AsMap()
	data, _, _ := unstructured.NestedSlice(got, "spec", "forProvider", "sourceRaw")
	if d := data[0].(map[string]any)["data"]; d != "#cloud-config\nhostname: as-created\n" {
		t.Errorf("the snippet's content changed: %q", d)
	}
	if n, _, _ := unstructured.NestedString(got, "spec", "forProvider", "nodeName"); n != "pve0" {
		t.Errorf("the snippet's node changed to %q", n)
	}
	if w := warnings(rsp); !strings.Contains(w, "user-data is read at first boot only") || !strings.Contains(w, "nix/hosts/dns01") {
		t.Errorf("want a warning pointing at nix/hosts/dns01, got %q", w)
	}
}

// TestUserDataCondition: the claim shows where the snippet stands, with the
// provider's message when the upload fails.
func TestUserDataCondition(t *testing.T) {
	failing := map[string]any{"status": map[string]any{"conditions": []any{
		map[string]any{"type": "Ready", "status": "False", "reason": "Creating"},
		map[string]any{"type": "LastAsyncOperation", "status": "False", "reason": "ApplyFailure", "message": "apply failed: error transferring file: tee: Is a directory"},
	}}}
	cases := map[string]struct {
		reason   string
		observed map[string]map[string]any
		want     string // status, reason, part of the message
	}{
		"First":    {reason: "nothing yet", want: "False Uploading uploading snippet local:snippets/dns01-1053-user-data.yaml to node pve1"},
		"Failed":   {reason: "the provider could not upload it", observed: map[string]map[string]any{"user-data": failing}, want: "False UploadFailed cannot upload snippet local:snippets/dns01-1053-user-data.yaml to node pve1, so the VM is not created yet: apply failed: error transferring file: tee: Is a directory. Check the ProviderConfig's SSH access"},
		"Uploaded": {reason: "it exists", observed: SnippetUploaded(runWith(t, nil, nil, nil)), want: "True Uploaded snippet local:snippets/dns01-1053-user-data.yaml is on node pve1"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := runWith(t, nil, tc.observed, nil)
			var got string
			for _, c := range rsp.GetConditions() {
				if c.GetType() == ConditionUserData {
					got = strings.TrimPrefix(c.GetStatus().String(), "STATUS_CONDITION_")
					got = map[string]string{"TRUE": "True", "FALSE": "False"}[got] + " " + c.GetReason() + " " + c.GetMessage()
				}
			}
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("%s: condition UserData:\nwant %s\ngot  %s", tc.reason, tc.want, got)
			}
			if name == "Failed" && rsp.GetDesired().GetResources()["vm"] != nil {
				t.Errorf("%s: a VM was composed although its snippet failed", tc.reason)
			}
		})
	}
}
