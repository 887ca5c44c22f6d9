package machine

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSpecFromAsJSON: SpecFrom gives what DecodeSpec gives for the spec's
// JSON, the way it replaced: the same Spec (the problems of the spec as
// written included) or the same error, for specs as claims write them and
// for every kind of mistake, including the ones it leaves to encoding/json.
func TestSpecFromAsJSON(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{
			"class": "small", "hostname": "dns01", "domain": "lab.home.arpa", "image": "nixos-26.05", "role": "dns",
			"network":        map[string]any{"ip": "10.0.10.53", "cidr": "10.0.10.0/24", "gateway": "10.0.10.1", "dns": []any{"10.0.10.1"}},
			"proxmox":        map[string]any{"node": "pve1", "vlan": float64(10), "vmId": float64(1053)},
			"nix":            map[string]any{"flakeRef": "git+https://git.lab.home.arpa/homelab-infra?ref=main#dns01"},
			"bootstrap":      map[string]any{"adminUser": "ops", "sshAuthorizedKeys": []any{"ssh-ed25519 AAAA ops@ws"}, "sshAuthorizedKeysSecretRef": map[string]any{"name": "keys"}},
			"tags":           []any{"core"},
			"secrets":        map[string]any{"role": "dns01", "wrappingTokenSecretRef": map[string]any{"name": "t", "key": "k"}},
			"claimRef":       map[string]any{"apiVersion": "homelab.dev/v1alpha1", "kind": "Machine", "name": "dns01", "namespace": "team"},
			"compositionRef": map[string]any{"name": "xmachines"}, "resourceRefs": []any{map[string]any{"name": "x"}},
		}
	}
	// Each edit sets one path of the spec to a value (nil deletes it).
	type edit struct {
		path []string
		v    any
	}
	values := []any{nil, "", "x", "10", float64(0), float64(-0.0), float64(7), float64(7.5), float64(1 << 53), float64(1<<60 + 0), math.Inf(1),
		true, false, []any{}, []any{"a", nil, ""}, []any{float64(1)}, map[string]any{}, map[string]any{"name": "s"}, int64(3), 3, []any(nil), map[string]any(nil), "\xff", "ü"}
	paths := [][]string{{"class"}, {"hostname"}, {"domain"}, {"network"}, {"network", "dhcp"}, {"network", "dns"}, {"proxmox", "vmId"},
		{"proxmox", "vlan"}, {"proxmox"}, {"tags"}, {"bootstrap", "sshAuthorizedKeys"}, {"bootstrap", "sshAuthorizedKeysSecretRef"},
		{"secrets"}, {"secrets", "wrappingTokenSecretRef"}, {"nix"}, {"unknownField"}, {"Hostname"}, {"HOSTNAME"}, {"hostnamE"}, {"proxmox", "VMID"},
		{"ﬁeld"}, {"ſecrets"}, {"claimRef"}}
	set := func(m map[string]any, e edit) {
		for _, p := range e.path[:len(e.path)-1] {
			next, ok := m[p].(map[string]any)
			if !ok || next == nil {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		last := e.path[len(e.path)-1]
		if e.v == nil {
			delete(m, last)
			return
		}
		m[last] = e.v
	}
	var cases []map[string]any
	cases = append(cases, base(), map[string]any{})
	for _, p := range paths {
		for _, v := range values {
			m := base()
			set(m, edit{p, v})
			cases = append(cases, m)
			// And the same value where a null is: kept, not deleted.
			if v == nil {
				m := base()
				m[p[0]] = nil
				cases = append(cases, m)
			}
		}
	}
	// A key encoding/json matches to a field ignoring case, where the
	// field's own key is absent.
	for _, rename := range [][2]string{{"hostname", "Hostname"}, {"hostname", "HOSTNAME"}, {"secrets", "ſecrets"}, {"class", "CLASS"}} {
		m := base()
		m[rename[1]] = m[rename[0]]
		delete(m, rename[0])
		cases = append(cases, m)
	}
	m := base()
	m["proxmox"].(map[string]any)["VMId"] = float64(7)
	delete(m["proxmox"].(map[string]any), "vmId")
	cases = append(cases, m)
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 3000; i++ {
		m := base()
		for j := r.Intn(4); j >= 0; j-- {
			set(m, edit{paths[r.Intn(len(paths))], values[r.Intn(len(values))]})
		}
		cases = append(cases, m)
	}
	for i, raw := range append([]any{nil, "spec", []any{}}, anys(cases)...) {
		got, gotErr := SpecFrom(raw)
		want, wantErr := specViaJSON(raw)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("case %d %v: error %v; through JSON %v", i, raw, gotErr, wantErr)
		}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(Spec{})); diff != "" {
			b, _ := json.Marshal(raw)
			t.Fatalf("case %d %s: spec (-through JSON, +SpecFrom):\n%s", i, b, diff)
		}
	}
}

func anys(ms []map[string]any) []any {
	out := make([]any, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}
