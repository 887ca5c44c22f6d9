package function

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/repo"
)

// runWith runs the function on the dns01 claim, edited, holding its
// identities, with what else is observed and the identity objects Crossplane
// found by name (by requirement; nil: none exists).
func runWith(t *testing.T, edit func(xr map[string]any), observed map[string]map[string]any, found map[string][]map[string]any) *fnv1.RunFunctionResponse {
	t.Helper()
	claims, _ := exampleClaims(t)
	xr := repo.XRFor(claims["dns01"])
	if edit != nil {
		edit(xr)
	}
	return runXR(t, xr, held(t, xr, observed), found)
}

// runXR runs the function on xr with exactly what is observed.
func runXR(t *testing.T, xr map[string]any, observed map[string]map[string]any, found map[string][]map[string]any) *fnv1.RunFunctionResponse {
	t.Helper()
	_, input := exampleClaims(t)
	xr["metadata"].(map[string]any)["uid"] = "uid-" + xr["metadata"].(map[string]any)["name"].(string)
	required := Offline()
	for k, v := range found {
		required[k] = v
	}
	req, err := NewRequest(xr, input, observed, required)
	if err != nil {
		t.Fatal(err)
	}
	rsp, err := (&Function{}).RunFunction(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return rsp
}

func warnings(rsp *fnv1.RunFunctionResponse) string {
	return messages(rsp, fnv1.Severity_SEVERITY_WARNING)
}

// observedBig is a VM whose disk Proxmox reports at 64 GiB.
func observedBig(t *testing.T) map[string]map[string]any {
	t.Helper()
	vm := observedVM("dns01")
	vm["status"].(map[string]any)["atProvider"].(map[string]any)["disk"] = []any{map[string]any{"interface": "virtio0", "size": 64}}
	obs := Applied(runWith(t, nil, nil, nil))
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
	obs := Applied(runWith(t, nil, nil, nil))
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
		"Uploaded": {reason: "it exists", observed: Applied(runWith(t, nil, nil, nil)), want: "True Uploaded snippet local:snippets/dns01-1053-user-data.yaml is on node pve1"},
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
