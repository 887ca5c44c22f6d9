package function

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/homelab-infra/homelab-infra/internal/compose"
)

// TestVMOwnership: the provider may make or change a VM only once it is
// known to be absent or this claim's; any other VM with the id is only read.
func TestVMOwnership(t *testing.T) {
	mark := compose.Mark("team/web")
	vm := func(pols []any, desc string, synced map[string]any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"managementPolicies": pols}}}
		st := map[string]any{}
		if desc != "" {
			st["atProvider"] = map[string]any{"vmId": int64(1100), "description": desc}
		}
		if synced != nil {
			st["conditions"] = []any{synced}
		}
		u.Object["status"] = st
		return u
	}
	failed := func(msg string) map[string]any {
		return map[string]any{"type": "Synced", "status": "False", "reason": "ReconcileError", "message": msg}
	}
	cases := map[string]struct {
		reason      string
		observed    *unstructured.Unstructured
		wantFull    bool
		wantForeign string
	}{
		"New":         {reason: "nothing observed yet: read first", observed: nil},
		"Reading":     {reason: "the provider has not reported yet", observed: vm(compose.ObservePolicies, "", nil)},
		"Free":        {reason: "no VM has the id: the provider may make it", observed: vm(compose.ObservePolicies, "", failed(notExist)), wantFull: true},
		"Ours":        {reason: "a VM with this claim's mark (a rebuilt cluster): adopt it", observed: vm(compose.ObservePolicies, "web.lab: "+mark+"; edits here are overwritten", nil), wantFull: true},
		"Managed":     {reason: "once managed, always managed", observed: vm(compose.ManagementPolicies, "edited by hand", nil), wantFull: true},
		"HandMade":    {reason: "a VM without the mark is never taken over", observed: vm(compose.ObservePolicies, "my test VM", nil), wantForeign: "VM 1100 exists in Proxmox and is not this claim's"},
		"OtherClaims": {reason: "another claim's mark is not this one's", observed: vm(compose.ObservePolicies, "x: "+compose.Mark("team/db"), nil), wantForeign: "is not this claim's"},
		"OutsidePool": {reason: "a VM the token may not read is outside the pool", observed: vm(compose.ObservePolicies, "", failed("observe failed: cannot run refresh: Permission check failed (/vms/1100, VM.Audit)")), wantForeign: "outside pool homelab"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			pols, foreign := vmOwnership(tc.observed, mark, 1100)
			want := compose.ObservePolicies
			if tc.wantFull {
				want = compose.ManagementPolicies
			}
			if diff := cmp.Diff(want, pols); diff != "" {
				t.Errorf("%s: policies (-want, +got):\n%s", tc.reason, diff)
			}
			if (tc.wantForeign == "") != (foreign == "") || !strings.Contains(foreign, tc.wantForeign) {
				t.Errorf("%s: why not this claim's: want %q, got %q", tc.reason, tc.wantForeign, foreign)
			}
		})
	}
}
