package compose_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// TestKeepCreateOnly: what bpg can only replace is taken from the resource
// that exists; everything else is the composer's.
func TestKeepCreateOnly(t *testing.T) {
	vm := func(node string, clone int64, cores int64, ud string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"kind": compose.VMKind,
			"spec": map[string]any{"forProvider": map[string]any{
				"nodeName":       node,
				"clone":          []any{map[string]any{"vmId": clone}},
				"cpu":            []any{map[string]any{"cores": cores}},
				"initialization": []any{map[string]any{"userDataFileId": ud, "datastoreId": "local-lvm"}},
			}},
		}}
	}
	cases := map[string]struct {
		reason   string
		desired  *unstructured.Unstructured
		observed *unstructured.Unstructured
		want     *unstructured.Unstructured
		wantKept []string
	}{
		"NothingObserved": {
			reason: "a new VM is all the composer's", desired: vm("pve2", 9003, 2, "a"), want: vm("pve2", 9003, 2, "a"),
		},
		"Same": {
			reason: "nothing to keep when they agree", desired: vm("pve1", 9002, 2, "a"), observed: vm("pve1", 9002, 1, "a"), want: vm("pve1", 9002, 2, "a"),
		},
		"DefaultsMoved": {
			reason:   "a new default node, template and snippet: the VM keeps its own; cores still follow the class",
			desired:  vm("pve2", 9003, 2, "b"),
			observed: vm("pve1", 9002, 1, "a"),
			want:     vm("pve1", 9002, 2, "a"),
			wantKept: []string{"spec.forProvider.nodeName", "spec.forProvider.clone", "spec.forProvider.initialization.0.userDataFileId"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			kept := compose.KeepCreateOnly(tc.desired, tc.observed)
			if diff := cmp.Diff(tc.wantKept, kept); diff != "" {
				t.Errorf("%s: kept fields (-want, +got):\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(normalize(tc.want.Object), normalize(tc.desired.Object)); diff != "" {
				t.Errorf("%s: desired (-want, +got):\n%s", tc.reason, diff)
			}
		})
	}
}

// TestSnippetNamesAreUnique: the snippet is named by the VM id, unique in a
// Proxmox cluster, so two machines never share one, even with one host name.
func TestSnippetNamesAreUnique(t *testing.T) {
	m := func(host string, id int64) *machine.Resolved {
		r := &machine.Resolved{SnippetDatastore: "local"}
		r.Hostname, r.Proxmox.VMID = host, &id
		return r
	}
	a, b := compose.SnippetID(m("web", 1100)), compose.SnippetID(m("web", 1101))
	if a == b {
		t.Errorf("two VM ids share snippet %s", a)
	}
	if want := "local:snippets/web-1100-user-data.yaml"; a != want {
		t.Errorf("snippet id: want %s, got %s", want, a)
	}
}

// normalize round-trips through JSON, so int64 and float64 compare equal.
func normalize(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}
