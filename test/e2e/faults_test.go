//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/test/harness"
)

var gvkProviderConfig = schema.FromAPIVersionAndKind("proxmox.homelab.dev/v1beta1", "ProviderConfig")

// TestProviderConfigFaults gives a VirtualMachine a ProviderConfig of its own
// whose credentials are wrong in one way each. The managed resource's Synced
// condition names the cause, the provider makes nothing in Proxmox, and once
// the Secret is fixed the same resource goes on to create its VM.
func TestProviderConfigFaults(t *testing.T) {
	t.Parallel()
	cp, n := stackWithNode(t)
	good := map[string]string{}
	if err := json.Unmarshal(n.Credentials(), &good); err != nil {
		t.Fatal(err)
	}
	closed, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		reason string
		wrong  map[string]string
		want   string
	}{
		"WrongToken": {
			reason: "a token Proxmox does not know is refused with 401 on the first read",
			wrong:  map[string]string{"api_token": "crossplane@pve!provider=" + randomHex(16)},
			want:   "401",
		},
		"Unreachable": {
			reason: "nothing listens at the endpoint",
			wrong:  map[string]string{"endpoint": fmt.Sprintf("https://127.0.0.1:%d/", closed)},
			want:   "connection refused",
		},
		"UntrustedCertificate": {
			reason: "the node's certificate is self-signed and insecure is off",
			wrong:  map[string]string{"insecure": "false"},
			want:   "certificate",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxFor(t)
			creds := map[string]string{}
			for k, v := range good {
				creds[k] = v
			}
			for k, v := range tc.wrong {
				creds[k] = v
			}
			pc := "fault-" + strings.ToLower(name)
			secret := credentialsSecret(t, cp, pc, creds)
			applyProviderConfig(t, cp, pc, secret)
			id := vmIDs.Add(1)
			vm := bareVM(pc, id)
			if err := cp.Apply(ctx, vm); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { deleteAndWait(t, cp, n, vm, id) })

			waitFor(t, fmt.Sprintf("%s: Synced=False naming %q", tc.reason, tc.want), func(ctx context.Context) (bool, string, error) {
				got, err := get(ctx, cp, gvkVM, "", vm.GetName())
				if err != nil {
					return false, err.Error(), nil
				}
				msg := fmt.Sprint(harness.Condition(got, "Synced")["message"])
				return harness.ConditionStatus(got, "Synced") == "False" && strings.Contains(msg, tc.want), conditionsString(got), nil
			})
			// Nothing is half-made: the provider never got as far as a clone.
			if _, ok := n.Sim.VM(int(id)); ok {
				t.Errorf("%s: VM %d exists in Proxmox although the provider could not reach it", tc.reason, id)
			}
			for _, s := range []string{creds["api_token"], good["ssh_private_key"]} {
				if got, _ := get(ctx, cp, gvkVM, "", vm.GetName()); got != nil && strings.Contains(conditionsString(got), s) {
					t.Errorf("%s: a credential shows in the resource's conditions", tc.reason)
				}
			}

			// Fixed, the same resource creates its VM and becomes Ready.
			credentialsSecret(t, cp, pc, good)
			waitVMReady(t, cp, vm.GetName())
			if _, ok := n.Sim.VM(int(id)); !ok {
				t.Errorf("VM %d is Ready but not in Proxmox", id)
			}
		})
	}
}

// credentialsSecret creates or replaces the Secret crossplane-system/<name>
// holding creds under the key "credentials", and returns its name.
func credentialsSecret(t testing.TB, cp *harness.ControlPlane, name string, creds map[string]string) string {
	t.Helper()
	b, _ := json.Marshal(creds)
	ctx := ctxFor(t)
	sec := &corev1.Secret{}
	err := cp.Client.Get(ctx, types.NamespacedName{Namespace: harness.CrossplaneNamespace, Name: name}, sec)
	if err == nil {
		sec.Data = map[string][]byte{"credentials": b}
		if err := cp.Client.Update(ctx, sec); err != nil {
			t.Fatal(err)
		}
		return name
	}
	sec = &corev1.Secret{Data: map[string][]byte{"credentials": b}}
	sec.SetNamespace(harness.CrossplaneNamespace)
	sec.SetName(name)
	if err := cp.Client.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Client.Delete(context.Background(), sec) })
	return name
}

// applyProviderConfig makes ProviderConfig name read Secret secret.
func applyProviderConfig(t testing.TB, cp *harness.ControlPlane, name, secret string) {
	t.Helper()
	pc := newObject(gvkProviderConfig)
	pc.SetName(name)
	pc.Object["spec"] = map[string]any{"credentials": map[string]any{
		"source":    "Secret",
		"secretRef": map[string]any{"namespace": harness.CrossplaneNamespace, "name": secret, "key": "credentials"},
	}}
	if err := cp.Apply(ctxFor(t), pc); err != nil {
		t.Fatal(err)
	}
}

// bareVM is a VirtualMachine made directly, without a claim: a stopped full
// clone of the template with VM id id, through ProviderConfig pc.
func bareVM(pc string, id int64) *unstructured.Unstructured {
	vm := newObject(gvkVM)
	vm.SetName(fmt.Sprintf("bare-%d", id))
	vm.SetAnnotations(map[string]string{compose.AnnotationExternalName: fmt.Sprint(id)})
	vm.Object["spec"] = map[string]any{
		"providerConfigRef": map[string]any{"name": pc},
		"forProvider": map[string]any{
			"nodeName": "pve1",
			"vmId":     id,
			"name":     fmt.Sprintf("bare-%d", id),
			"started":  false,
			"clone":    []any{map[string]any{"vmId": int64(9002), "full": true, "datastoreId": "local-lvm"}},
			// The token may make VMs only in the project's pool
			// (deploy/proxmox/token.sh).
			"poolId": compose.Pool,
		},
	}
	return vm
}

// deleteAndWait deletes a bare VirtualMachine and waits until Proxmox has
// no VM id, so no test leaves a VM behind.
func deleteAndWait(t testing.TB, cp *harness.ControlPlane, n *node, vm *unstructured.Unstructured, id int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_ = cp.Client.Delete(ctx, vm)
	for ctx.Err() == nil {
		if _, err := get(ctx, cp, gvkVM, "", vm.GetName()); err != nil {
			if _, ok := n.Sim.VM(int(id)); !ok {
				return
			}
		}
		time.Sleep(time.Second)
	}
	t.Errorf("VirtualMachine %s (VM %d) was not deleted", vm.GetName(), id)
}
