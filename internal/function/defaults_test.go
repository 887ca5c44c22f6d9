package function

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/repo"
)

// TestDefaultEditsKeepExistingMachines edits each Composition default under
// docker01, which takes all of them (placement, bridge, nameservers, domain,
// flake repo, CPU type, its image entry's template and SCSI controller): the
// existing VM and snippet are desired exactly as
// before (nothing for bpg to move, reboot or replace), the claim is told
// why, and status shows what the machine has, not the new default. A new
// machine takes the new default.
func TestDefaultEditsKeepExistingMachines(t *testing.T) {
	claims, input := exampleClaims(t)
	c := claims["docker01"]
	before := converge(t, c, input)
	cases := map[string]struct {
		reason      string
		from, to    string
		wantWarning string
	}{
		"Node":             {reason: "VM placement", from: `"node":"pve1"`, to: `"node":"pve2"`, wantWarning: "spec.forProvider.nodeName"},
		"Storage":          {reason: "bpg would shut the VM down and move its disk", from: `"storage":"local-lvm"`, to: `"storage":"fast-lvm"`, wantWarning: "spec.forProvider.disk.0.datastoreId"},
		"Bridge":           {reason: "bpg would move the NIC", from: `"bridge":"vmbr0"`, to: `"bridge":"vmbr1"`, wantWarning: "networkDevice.0.bridge"},
		"SnippetDatastore": {reason: "the snippet the VM reads at every cold start", from: `"snippetDatastore":"local"`, to: `"snippetDatastore":"nfs"`, wantWarning: "userDataFileId"},
		"Domain":           {reason: "cloud-init DNS: bpg would reboot", from: `"domain":"lab.home.arpa"`, to: `"domain":"home.example"`, wantWarning: "initialization.0.dns.0.domain"},
		"DNS":              {reason: "cloud-init DNS: bpg would reboot", from: `"dns":["10.0.10.1"]`, to: `"dns":["10.0.10.2"]`, wantWarning: "initialization.0.dns.0.servers"},
		"CPUType":          {reason: "bpg would reboot", from: `"cpuType":"x86-64-v2-AES"`, to: `"cpuType":"host"`, wantWarning: "cpu.0.type"},
		"ImageTemplate":    {reason: "bpg would clone a new VM", from: `"templateVmId":9002`, to: `"templateVmId":9003`, wantWarning: "spec.forProvider.clone"},
		"ImageSCSI":        {reason: "bpg would reboot", from: `"scsiHardware":"virtio-scsi-single"`, to: `"scsiHardware":"virtio-scsi-pci"`, wantWarning: "scsiHardware"},
		"FlakeRepo":        {reason: "user-data is first-boot only", from: `"flakeRepo":"git+https://git.lab.home.arpa/homelab-infra?ref=main"`, to: `"flakeRepo":"git+https://git.lab.home.arpa/other?ref=main"`, wantWarning: "user-data is read at first boot only"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			edited := strings.Replace(string(input), tc.from, tc.to, 1)
			if edited == string(input) {
				t.Fatalf("%s: the input has no %s", tc.reason, tc.from)
			}
			obs := Applied(before)
			obs[compose.VM]["status"] = observedVM(c.Name)["status"]
			xr := repo.XRFor(c)
			req, err := NewRequest(xr, []byte(edited), held(t, xr, obs), Offline())
			if err != nil {
				t.Fatal(err)
			}
			rsp, err := (&Function{}).RunFunction(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if f := fatals(rsp); f != "" {
				t.Fatalf("%s: unexpected Fatal: %s", tc.reason, f)
			}
			for _, r := range []string{compose.UserData, compose.VM} {
				was := before.GetDesired().GetResources()[r].GetResource().AsMap()["spec"]
				now := rsp.GetDesired().GetResources()[r].GetResource().AsMap()["spec"]
				if diff := cmp.Diff(was, now); diff != "" {
					t.Errorf("%s: the existing %s changed (-before, +after):\n%s", tc.reason, r, diff)
				}
			}
			if w := warnings(rsp); !strings.Contains(w, tc.wantWarning) {
				t.Errorf("%s: want a warning naming %s, got %q", tc.reason, tc.wantWarning, w)
			}
			st := rsp.GetDesired().GetComposite().GetResource().AsMap()["status"].(map[string]any)
			wantSt := before.GetDesired().GetComposite().GetResource().AsMap()["status"].(map[string]any)
			for _, k := range []string{"node", "flakeRef"} {
				if st[k] != wantSt[k] {
					t.Errorf("%s: status.%s: want the machine's %v, got %v", tc.reason, k, wantSt[k], st[k])
				}
			}

			// A machine created now takes the new default.
			fresh := convergeFrom(t, c, []byte(edited), held(t, xr, nil))
			if diff := cmp.Diff(responseSpecs(before), responseSpecs(fresh)); diff == "" {
				t.Errorf("%s: a new machine did not take the new default", tc.reason)
			}
		})
	}
}

// responseSpecs are the specs of the snippet and the VM rsp desires.
func responseSpecs(rsp *fnv1.RunFunctionResponse) []any {
	var out []any
	for _, r := range []string{compose.UserData, compose.VM} {
		out = append(out, rsp.GetDesired().GetResources()[r].GetResource().AsMap()["spec"])
	}
	return out
}
