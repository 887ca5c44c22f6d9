//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-infra/homelab-infra/test/harness"
)

// A fake private key line: it only has to look like one to the XRD's rule.
const fakePrivateKey = "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"

// TestAdmissionRejects sends bad claims to the real apiserver. Each must be
// refused by the XRD's OpenAPI schema or CEL rules with a message naming the
// field, and nothing may be created for it: no claim, no XR, no VM.
func TestAdmissionRejects(t *testing.T) {
	t.Parallel()
	cp := stack(t)
	ns := newNamespace(t, cp, "admission")
	cases := map[string]struct {
		reason string
		edit   func(spec map[string]any)
		// wantField is the field path the message must name; wantMsg, if
		// set, is a further part of the message (the fix).
		wantField, wantMsg string
		// notInMsg must not appear in the message (a secret).
		notInMsg string
	}{
		"hostname-not-rfc1123": {
			reason:    "a host name with capitals and '_' is not a DNS label",
			edit:      func(s map[string]any) { s["hostname"] = "DNS_01" },
			wantField: "spec.hostname", wantMsg: "RFC 1123",
		},
		"hostname-missing": {
			reason:    "the host name is required",
			edit:      func(s map[string]any) { delete(s, "hostname") },
			wantField: "spec.hostname", wantMsg: "Required",
		},
		"class-bad-name": {
			reason:    "a class name must be a DNS label",
			edit:      func(s map[string]any) { s["class"] = "Small!" },
			wantField: "spec.class",
		},
		"dhcp-with-static": {
			reason:    "dhcp: true and a static address contradict each other",
			edit:      func(s map[string]any) { s["network"].(map[string]any)["dhcp"] = true },
			wantField: "spec.network.ip", wantMsg: "conflicts with dhcp: true",
		},
		"static-without-gateway": {
			reason:    "a static address needs a gateway",
			edit:      func(s map[string]any) { delete(s["network"].(map[string]any), "gateway") },
			wantField: "spec.network.gateway", wantMsg: "required for a static address",
		},
		"ip-not-ipv4": {
			reason:    "10.0.10.300 is no address",
			edit:      func(s map[string]any) { s["network"].(map[string]any)["ip"] = "10.0.10.300" },
			wantField: "spec.network.ip", wantMsg: "IPv4",
		},
		"ip-outside-cidr": {
			reason:    "the address must be inside the subnet",
			edit:      func(s map[string]any) { s["network"].(map[string]any)["ip"] = "10.0.20.53" },
			wantField: "spec.network.ip", wantMsg: "outside cidr",
		},
		"cidr-host-bits": {
			reason:    "a CIDR must be a network address",
			edit:      func(s map[string]any) { s["network"].(map[string]any)["cidr"] = "10.0.10.1/24" },
			wantField: "spec.network.cidr", wantMsg: "host bits",
		},
		"gateway-is-self": {
			reason:    "the gateway cannot be the machine itself",
			edit:      func(s map[string]any) { s["network"].(map[string]any)["gateway"] = "10.0.10.53" },
			wantField: "spec.network.gateway", wantMsg: "own address",
		},
		"too-many-dns": {
			reason: "the resolver uses at most three servers",
			edit: func(s map[string]any) {
				s["network"].(map[string]any)["dns"] = []any{"10.0.10.1", "10.0.10.2", "10.0.10.3", "10.0.10.4"}
			},
			wantField: "spec.network.dns",
		},
		"vlan-out-of-range": {
			reason:    "VLAN ids stop at 4094",
			edit:      func(s map[string]any) { s["proxmox"].(map[string]any)["vlan"] = int64(5000) },
			wantField: "spec.proxmox.vlan",
		},
		"vmid-too-small": {
			reason:    "Proxmox VM ids start at 100",
			edit:      func(s map[string]any) { s["proxmox"].(map[string]any)["vmId"] = int64(42) },
			wantField: "spec.proxmox.vmId",
		},
		"vmid-missing": {
			reason:    "the VM id is the machine's identity in Proxmox",
			edit:      func(s map[string]any) { delete(s["proxmox"].(map[string]any), "vmId") },
			wantField: "spec.proxmox.vmId", wantMsg: "Required",
		},
		"flakeref-without-host": {
			reason: "a flake ref must name the host's output",
			edit: func(s map[string]any) {
				s["nix"].(map[string]any)["flakeRef"] = "git+https://git.lab.home.arpa/homelab-infra"
			},
			wantField: "spec.nix.flakeRef",
		},
		"admin-is-root": {
			reason:    "the admin user must not be root",
			edit:      func(s map[string]any) { s["bootstrap"].(map[string]any)["adminUser"] = "root" },
			wantField: "spec.bootstrap.adminUser", wantMsg: "must not be root",
		},
		"private-key-pasted": {
			reason:    "a pasted private key is refused, and the message does not echo it",
			edit:      func(s map[string]any) { s["bootstrap"].(map[string]any)["sshAuthorizedKeys"] = []any{fakePrivateKey} },
			wantField: "spec.bootstrap.sshAuthorizedKeys[0]", wantMsg: "PRIVATE key",
			notInMsg: "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ",
		},
		"keys-and-secret": {
			reason: "keys come inline or from a Secret, not both",
			edit: func(s map[string]any) {
				s["bootstrap"].(map[string]any)["sshAuthorizedKeysSecretRef"] = map[string]any{"name": "ops-keys"}
			},
			wantField: "spec.bootstrap.sshAuthorizedKeysSecretRef", wantMsg: "conflicts with sshAuthorizedKeys",
		},
		"ip-is-network-address": {
			reason:    "the subnet's own address is inside the CIDR but is no host address (the function alone refused it once)",
			edit:      func(s map[string]any) { s["network"].(map[string]any)["ip"] = "10.0.10.0" },
			wantField: "spec.network.ip", wantMsg: "network or broadcast address",
		},
		"key-type-swapped": {
			reason: "an ed25519 key's data under the ssh-rsa type: sshd would ignore it and lock the admin out",
			edit: func(s map[string]any) {
				s["bootstrap"].(map[string]any)["sshAuthorizedKeys"] = []any{"ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIAFLJ6VeZ/nBqc9gC5W59y5uJxq2icS504scLzx64ilF ops@workstation"}
			},
			wantField: "spec.bootstrap.sshAuthorizedKeys[0]", wantMsg: "not one valid OpenSSH public key line",
		},
		"flakeref-with-token": {
			reason: "a token in the flake ref would reach Git, the status, the snippet and /etc/nix-flake-target; the message must not repeat it",
			edit: func(s map[string]any) {
				s["nix"].(map[string]any)["flakeRef"] = "git+https://ops:glpat-s3cret@git.lab.home.arpa/homelab-infra?ref=main#dns01"
			},
			wantField: "spec.nix.flakeRef", wantMsg: "carries credentials", notInMsg: "s3cret",
		},
		"flakeref-github": {
			reason:    "the agent follows git URLs only: a github: ref passed every layer and stopped the VM at first boot",
			edit:      func(s map[string]any) { s["nix"].(map[string]any)["flakeRef"] = "github:me/homelab-infra#dns01" },
			wantField: "spec.nix.flakeRef", wantMsg: "not a flake ref the nix-gitops agent follows",
		},
		"duplicate-tags": {
			reason:    "tags are a set",
			edit:      func(s map[string]any) { s["tags"] = []any{"core", "core"} },
			wantField: "spec.tags[1]", wantMsg: "Duplicate",
		},
		"unknown-field": {
			reason:    "a misspelt field is an error, not silently dropped (strict field validation, as kubectl apply uses)",
			edit:      func(s map[string]any) { s["clas"] = "small" },
			wantField: "spec.clas", wantMsg: "unknown field",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			claim := exampleClaim(t, "dns01", ns)
			claim.SetName("bad-" + name)
			spec, _, _ := unstructured.NestedMap(claim.Object, "spec")
			tc.edit(spec)
			claim.Object["spec"] = spec

			err := cp.Client.Create(ctxFor(t), claim, client.FieldValidation("Strict"))
			if err == nil {
				t.Fatalf("%s: the apiserver accepted the claim", tc.reason)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantField) || !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("%s: want a message naming %q (and %q), got: %s", tc.reason, tc.wantField, tc.wantMsg, msg)
			}
			if tc.notInMsg != "" && strings.Contains(msg, tc.notInMsg) {
				t.Errorf("%s: the message echoes the secret: %s", tc.reason, msg)
			}
			if _, err := get(ctxFor(t), cp, gvkMachine, ns, claim.GetName()); client.IgnoreNotFound(err) != nil || err == nil {
				t.Errorf("%s: the refused claim exists (err %v)", tc.reason, err)
			}
		})
	}
	t.Cleanup(func() { assertNothingComposed(t, cp, ns) })
}

// TestFunctionRejects sends claims that the XRD's schema admits but the
// function's rules (which know the Composition's classes and images) refuse.
// Each claim's XR must report Synced=False naming the field, the claim must
// get a Warning event naming it, and no VM or snippet may exist.
func TestFunctionRejects(t *testing.T) {
	t.Parallel()
	cp := stack(t)
	ns := newNamespace(t, cp, "function")
	cases := map[string]struct {
		reason    string
		edit      func(spec map[string]any)
		wantField string
	}{
		"unknown-class": {
			reason:    "classes are defined in the Composition's function input, not the XRD",
			edit:      func(s map[string]any) { s["class"] = "huge" },
			wantField: "spec.class",
		},
		"unknown-image": {
			reason:    "images are mapped to templates in the function input",
			edit:      func(s map[string]any) { s["image"] = "nixos-99.99" },
			wantField: "spec.image",
		},
		"vmid-is-template": {
			reason:    "a machine on the template's id would adopt the template",
			edit:      func(s map[string]any) { s["proxmox"].(map[string]any)["vmId"] = int64(9002) },
			wantField: "spec.proxmox.vmId",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			claim, _ := machineClaim(t, "dns01", ns)
			spec, _, _ := unstructured.NestedMap(claim.Object, "spec")
			tc.edit(spec)
			claim.Object["spec"] = spec
			if err := cp.Client.Create(ctxFor(t), claim, client.FieldValidation("Strict")); err != nil {
				t.Fatalf("%s: the apiserver refused a claim only the function should refuse: %v", tc.reason, err)
			}
			xr := xrOf(t, cp, ns, claim.GetName())
			waitFor(t, "the XR to be Synced=False naming "+tc.wantField, func(ctx context.Context) (bool, string, error) {
				x, err := get(ctx, cp, gvkXMachine, "", xr.GetName())
				if err != nil {
					return false, "", err
				}
				c := harness.Condition(x, "Synced")
				msg := fmt.Sprint(c["message"])
				return c != nil && c["status"] == "False" && strings.Contains(msg, tc.wantField), "XR " + conditionsString(x), nil
			})
			// Crossplane keeps Synced=False on the XR; the claim shows the
			// refusal through the function's Valid condition.
			waitFor(t, "the claim to be Valid=False naming "+tc.wantField, claimValid(cp, ns, claim.GetName(), "False", tc.wantField))
			waitFor(t, "a Warning event on the claim naming "+tc.wantField, func(ctx context.Context) (bool, string, error) {
				evs := &corev1.EventList{}
				if err := cp.Client.List(ctx, evs, client.InNamespace(ns)); err != nil {
					return false, "", err
				}
				var seen []string
				for _, e := range evs.Items {
					if e.InvolvedObject.Kind != gvkMachine.Kind || e.InvolvedObject.Name != claim.GetName() {
						continue
					}
					seen = append(seen, e.Type+" "+e.Reason+": "+e.Message)
					if e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, tc.wantField) {
						return true, "", nil
					}
				}
				return false, fmt.Sprintf("claim events: %q", seen), nil
			})
			// The function composes nothing for a bad claim; give Crossplane
			// a moment in which it would have applied something.
			time.Sleep(time.Second)
			if vms, err := composedOf(ctxFor(t), cp, gvkVM, ns, claim.GetName()); err != nil || len(vms) != 0 {
				t.Errorf("%s: want no VM, got %d (err %v)", tc.reason, len(vms), err)
			}
		})
	}
	t.Cleanup(func() { assertNothingComposed(t, cp, ns) })
}

// assertNothingComposed fails t if any VM or snippet exists for a claim in ns.
func assertNothingComposed(t *testing.T, cp *harness.ControlPlane, ns string) {
	t.Helper()
	for _, gvk := range []schema.GroupVersionKind{gvkVM, gvkFile} {
		l := newList(gvk)
		if err := cp.Client.List(context.Background(), l, client.MatchingLabels{labelClaimNamespace: ns}); err != nil {
			t.Errorf("cannot list %s: %v", gvk.Kind, err)
			continue
		}
		if len(l.Items) != 0 {
			t.Errorf("want no %s for the bad claims in %s, got %d", gvk.Kind, ns, len(l.Items))
		}
	}
}
