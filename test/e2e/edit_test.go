//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-infra/homelab-infra/test/harness"
	"github.com/homelab-infra/homelab-infra/test/proxmoxsim"
)

// TestEditPolicy holds every field of the claim to its edit policy (README,
// "Editing a claim"; design D10) on the real stack: an edit either takes
// effect on the running VM, or is refused at admission naming the field
// and what to do instead. No edit leaves a composed resource failing: after
// each, the VM and snippet are Synced and the claim Ready.
func TestEditPolicy(t *testing.T) {
	t.Parallel()
	cp, n := stackWithNode(t)
	claim, id := machineClaim(t, "dns01", newNamespace(t, cp, "edit"))
	ns, name := claim.GetNamespace(), claim.GetName()
	if err := cp.Apply(ctxFor(t), claim); err != nil {
		t.Fatal(err)
	}
	waitClaimReady(t, cp, ns, name)

	t.Run("Refused", func(t *testing.T) {
		cases := map[string]struct {
			path  []string
			value any
			want  string
		}{
			"hostname":  {path: []string{"hostname"}, value: "renamed", want: "hostname cannot change"},
			"domain":    {path: []string{"domain"}, value: "example.org", want: "domain cannot change"},
			"image":     {path: []string{"image"}, value: "nixos-27.05", want: "image cannot change"},
			"bootstrap": {path: []string{"bootstrap", "adminUser"}, value: "admin", want: "bootstrap cannot change"},
			"flakeRef":  {path: []string{"nix", "flakeRef"}, value: "git+https://git.lab.home.arpa/other?ref=main#" + name, want: "nix.flakeRef cannot change"},
			"vmId":      {path: []string{"proxmox", "vmId"}, value: id + 1000, want: "proxmox.vmId cannot change"},
			"node":      {path: []string{"proxmox", "node"}, value: "pve2", want: "proxmox.node cannot change"},
			"storage":   {path: []string{"proxmox", "storage"}, value: "ceph", want: "proxmox.storage cannot change"},
			"secrets":   {path: []string{"secrets"}, value: map[string]any{"role": name, "wrappingTokenSecretRef": map[string]any{"name": name + "-vault"}}, want: "secrets cannot change"},
		}
		for field, tc := range cases {
			edited := claim.DeepCopy()
			setSpec(t, edited, tc.value, tc.path...)
			err := cp.Apply(ctxFor(t), edited)
			// The message names the field (spec.<field>) and what to do.
			named := "spec." + tc.path[0]
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), named) {
				t.Errorf("%s: want the apiserver to refuse the edit with %q naming %s, got %v", field, tc.want, named, err)
			}
		}
		// Adding a field the claim left out is a change too.
		edited := claim.DeepCopy()
		setSpec(t, edited, "local-lvm", "proxmox", "storage")
		if err := cp.Apply(ctxFor(t), edited); err == nil {
			t.Errorf("setting proxmox.storage, left out at creation, was admitted")
		}
	})

	// Each in-place edit, applied in turn to the one running machine.
	steps := []struct {
		name   string
		edit   func(c *unstructured.Unstructured)
		wait   string
		done   func(st proxmoxsim.VMState) (bool, string)
		reboot bool // the README says the change reboots the VM
	}{
		{
			name: "tags", edit: func(c *unstructured.Unstructured) { setSpec(t, c, []any{"core", "edited"}, "tags") },
			wait: "carry tag edited", done: func(st proxmoxsim.VMState) (bool, string) {
				return st.Config["tags"] == "core;dns;edited", st.Config["tags"]
			},
		},
		{
			name: "vlan", edit: func(c *unstructured.Unstructured) { setSpec(t, c, int64(20), "proxmox", "vlan") },
			wait: "sit on VLAN 20", done: func(st proxmoxsim.VMState) (bool, string) {
				return strings.Contains(st.Config["net0"], "tag=20"), st.Config["net0"]
			},
		},
		{
			name: "class-up", edit: func(c *unstructured.Unstructured) { setSpec(t, c, "medium", "class") },
			wait: "run with class medium: 2 cores, 4 GiB, a 32 GiB disk", reboot: true,
			done: func(st proxmoxsim.VMState) (bool, string) {
				return st.Boot.Cores == 2 && st.Boot.MemoryMiB == 4096 && st.Disks["virtio0"] == 32<<30 && st.Boot.Booted,
					fmt.Sprintf("cores %d, memory %d, disks %v, booted %v", st.Boot.Cores, st.Boot.MemoryMiB, st.Disks, st.Boot.Booted)
			},
		},
		{
			name: "network", edit: func(c *unstructured.Unstructured) {
				setSpec(t, c, "10.0.10.250", "network", "ip")
				setSpec(t, c, []any{"10.0.10.2"}, "network", "dns")
			},
			wait: "boot with the new address and nameserver", reboot: true,
			done: func(st proxmoxsim.VMState) (bool, string) {
				return st.Boot.Network.IP == "10.0.10.250/24" && strings.Join(st.Boot.Network.Nameservers, " ") == "10.0.10.2" && st.Boot.Booted,
					fmt.Sprintf("%+v booted %v", st.Boot.Network, st.Boot.Booted)
			},
		},
		{
			// Issue 9 point 5: a smaller class never fails a reconcile: the
			// disk stays, cores and memory follow.
			name: "class-down", edit: func(c *unstructured.Unstructured) { setSpec(t, c, "small", "class") },
			wait: "run with class small's 1 core and 2 GiB, keeping its 32 GiB disk", reboot: true,
			done: func(st proxmoxsim.VMState) (bool, string) {
				return st.Boot.Cores == 1 && st.Boot.MemoryMiB == 2048 && st.Disks["virtio0"] == 32<<30 && st.Boot.Booted,
					fmt.Sprintf("cores %d, memory %d, disks %v", st.Boot.Cores, st.Boot.MemoryMiB, st.Disks)
			},
		},
	}
	for _, s := range steps {
		before, _ := n.Sim.VM(int(id))
		s.edit(claim)
		if err := cp.Apply(ctxFor(t), claim); err != nil {
			t.Fatalf("%s: the edit was refused: %v", s.name, err)
		}
		after := waitSim(t, n, id, s.wait, s.done)
		if rebooted := after.Starts > before.Starts; rebooted != s.reboot {
			t.Errorf("%s: rebooted=%v, but the README says %v", s.name, rebooted, s.reboot)
		}
		assertSettled(t, cp, ns, name)
		t.Logf("%s: in effect", s.name)
	}
	waitFor(t, "a Warning on the claim that the disk stays", func(ctx context.Context) (bool, string, error) {
		evs, err := events(ctx, cp, ns, "Machine", name)
		for _, e := range evs {
			if strings.Contains(e, "spec.class: class small has a 16 GiB disk, but the VM's disk is already 32 GiB") {
				return true, "", err
			}
		}
		return false, fmt.Sprint(evs), err
	})
}

// assertSettled waits until the claim is Ready and its composed resources
// Synced and Ready: the edit left nothing failing behind a Ready claim.
func assertSettled(t testing.TB, cp *harness.ControlPlane, ns, name string) {
	t.Helper()
	waitWithin(t, providerTimeout, "the claim and its resources to settle", func(ctx context.Context) (bool, string, error) {
		c, err := get(ctx, cp, gvkMachine, ns, name)
		if err != nil {
			return false, "", err
		}
		if harness.ConditionStatus(c, "Ready") != "True" {
			return false, "claim " + conditionsString(c), nil
		}
		for _, gvk := range []schemaGVK{gvkVM, gvkFile} {
			objs, err := composedOf(ctx, cp, gvk, ns, name)
			if err != nil || len(objs) != 1 {
				return false, fmt.Sprintf("%d %s", len(objs), gvk.Kind), err
			}
			o := &objs[0]
			for _, typ := range []string{"Synced", "Ready", "LastAsyncOperation"} {
				if st := harness.ConditionStatus(o, typ); st != "True" && st != "" {
					return false, gvk.Kind + " " + conditionsString(o), nil
				}
			}
		}
		return true, "", nil
	})
}

// TestSecretKeysChange: keys read from a Secret are user-data too; a new
// key in the Secret leaves the snippet as the VM booted with it and says
// so on the claim, and nothing fails.
func TestSecretKeysChange(t *testing.T) {
	t.Parallel()
	cp, n := stackWithNode(t)
	ns := newNamespace(t, cp, "secret")
	claim, id := machineClaim(t, "docker01", ns)
	key := exampleClaim(t, "docker01", ns).Object["spec"].(map[string]any)["bootstrap"].(map[string]any)["sshAuthorizedKeys"].([]any)[0].(string)
	sec := &corev1.Secret{StringData: map[string]string{"authorized_keys": key + "\n"}}
	sec.SetNamespace(ns)
	sec.SetName("ops-keys")
	if err := cp.Client.Create(ctxFor(t), sec); err != nil {
		t.Fatal(err)
	}
	bs := claim.Object["spec"].(map[string]any)["bootstrap"].(map[string]any)
	delete(bs, "sshAuthorizedKeys")
	bs["sshAuthorizedKeysSecretRef"] = map[string]any{"name": "ops-keys"}
	if err := cp.Apply(ctxFor(t), claim); err != nil {
		t.Fatal(err)
	}
	waitClaimReady(t, cp, ns, claim.GetName())
	booted, _ := n.Sim.VM(int(id))
	if !strings.Contains(booted.Boot.UserData, key) {
		t.Fatalf("the VM did not boot with the Secret's key:\n%s", booted.Boot.UserData)
	}

	sec.StringData = map[string]string{"authorized_keys": key + "\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb new@key\n"}
	if err := cp.Client.Update(ctxFor(t), sec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a Warning on the claim that user-data is first-boot only", func(ctx context.Context) (bool, string, error) {
		evs, err := events(ctx, cp, ns, "Machine", claim.GetName())
		for _, e := range evs {
			if strings.Contains(e, "user-data is read at first boot only") {
				return true, "", err
			}
		}
		return false, fmt.Sprint(evs), err
	})
	file := snippetOf(t, cp, ns, claim.GetName())
	if d := snippetData(t, file); strings.Contains(d, "new@key") {
		t.Errorf("the snippet took the Secret's new key; it must stay as the VM booted with it:\n%s", d)
	}
	assertSettled(t, cp, ns, claim.GetName())
}

// TestWrongVLANCanBeFixed: a DHCP machine on a VLAN without a DHCP server
// boots but never gets an address, so its agent reports none and every
// read waits the agent timeout. With bpg's default (15 minutes) each read
// outlives the provider's 3-minute reconcile and the VM could never be
// changed again; with the composed 60 s the reconcile completes, the claim
// says it is not Ready, and moving it to the right VLAN fixes it.
func TestWrongVLANCanBeFixed(t *testing.T) {
	t.Parallel()
	cp, n := stackWithNode(t)
	claim, id := machineClaim(t, "docker01", newNamespace(t, cp, "vlan"))
	ns, name := claim.GetNamespace(), claim.GetName()
	setSpec(t, claim, int64(30), "proxmox", "vlan")
	if err := cp.Apply(ctxFor(t), claim); err != nil {
		t.Fatal(err)
	}
	waitSim(t, n, id, "boot on VLAN 30 without an address", func(st proxmoxsim.VMState) (bool, string) {
		return st.Boot.Booted && len(st.Boot.Addresses) == 0, fmt.Sprintf("booted %v, addresses %v", st.Boot.Booted, st.Boot.Addresses)
	})
	waitWithin(t, providerTimeout, "the VM to be Synced (its reconcile completes) and the claim not Ready", func(ctx context.Context) (bool, string, error) {
		vm, err := composedVM(ctx, cp, ns, name)
		if err != nil || vm == nil {
			return false, "no VM", err
		}
		c, err := get(ctx, cp, gvkMachine, ns, name)
		if err != nil {
			return false, "", err
		}
		ok := harness.ConditionStatus(vm, "Synced") == "True" && harness.ConditionStatus(vm, "Ready") == "True" && harness.ConditionStatus(c, "Ready") != "True"
		return ok, "VM " + conditionsString(vm) + "; claim " + conditionsString(c), nil
	})

	setSpec(t, claim, int64(20), "proxmox", "vlan")
	if err := cp.Apply(ctxFor(t), claim); err != nil {
		t.Fatal(err)
	}
	waitSim(t, n, id, "get a lease on VLAN 20", func(st proxmoxsim.VMState) (bool, string) {
		return strings.Contains(st.Config["net0"], "tag=20") && len(st.Boot.Addresses) == 1 && strings.HasPrefix(st.Boot.Addresses[0], "10.0.20."), fmt.Sprintf("%s %v", st.Config["net0"], st.Boot.Addresses)
	})
	c := waitClaimReady(t, cp, ns, name)
	if ips, _, _ := unstructured.NestedSlice(c.Object, "status", "ipv4Addresses"); len(ips) != 1 || !strings.HasPrefix(fmt.Sprint(ips[0]), "10.0.20.") {
		t.Errorf("claim status: want the VLAN 20 lease, got %v", ips)
	}
}

// TestSnippetUploadFailure: the VM is not made before its snippet exists. A
// node that refuses the file (here a folder in its place, so `tee` fails)
// shows on the claim with the provider's message, and no VM is cloned; once
// the node takes the file, the VM follows.
func TestSnippetUploadFailure(t *testing.T) {
	t.Parallel()
	cp, n := stackWithNode(t)
	claim, id := machineClaim(t, "docker01", newNamespace(t, cp, "upload"))
	ns, name := claim.GetNamespace(), claim.GetName()
	blocker := fmt.Sprintf("%s/%s-%d-user-data.yaml", n.Sim.SnippetsDir(), name, id)
	if err := mkdir(blocker); err != nil {
		t.Fatal(err)
	}
	if err := cp.Apply(ctxFor(t), claim); err != nil {
		t.Fatal(err)
	}
	waitWithin(t, providerTimeout, "the claim to show the failed upload", claimCondition(cp, ns, name, "UserData", "False", "Is a directory"))
	if _, found := n.Sim.VM(int(id)); found {
		t.Errorf("VM %d was cloned before its snippet existed", id)
	}
	if vm, err := composedVM(ctxFor(t), cp, ns, name); err != nil || vm != nil {
		t.Errorf("an VirtualMachine was composed before its snippet existed (err %v)", err)
	}

	if err := rmdir(blocker); err != nil {
		t.Fatal(err)
	}
	waitClaimReady(t, cp, ns, name)
	if st, found := n.Sim.VM(int(id)); !found || !st.Boot.Booted {
		t.Errorf("VM %d did not follow its snippet", id)
	}
}

// claimCondition is a waitFor condition: the claim's condition typ has the
// status and a message containing msg.
func claimCondition(cp *harness.ControlPlane, ns, name, typ, status, msg string) func(ctx context.Context) (bool, string, error) {
	return func(ctx context.Context) (bool, string, error) {
		c, err := get(ctx, cp, gvkMachine, ns, name)
		if err != nil {
			return false, "", client.IgnoreNotFound(err)
		}
		v := harness.Condition(c, typ)
		return v != nil && v["status"] == status && strings.Contains(fmt.Sprint(v["message"]), msg), "claim " + conditionsString(c), nil
	}
}

// TestMachineConflicts: claims need not come from one repo, so uniqueness is
// the cluster's: a second claim on a VM id, host name or address another
// machine holds (its identity Lease) is refused naming the field and the
// holder, and gets no VM and no snippet (so no snippet can be overwritten
// either).
func TestMachineConflicts(t *testing.T) {
	t.Parallel()
	cp, n := stackWithNode(t)
	first, id := machineClaim(t, "dns01", newNamespace(t, cp, "first"))
	if err := cp.Apply(ctxFor(t), first); err != nil {
		t.Fatal(err)
	}
	waitComposed(t, cp, first.GetNamespace(), first.GetName())
	ns := newNamespace(t, cp, "second")
	cases := map[string]struct {
		edit  func(c *unstructured.Unstructured)
		field string
	}{
		"vmId":     {edit: func(c *unstructured.Unstructured) { setSpec(t, c, id, "proxmox", "vmId") }, field: "spec.proxmox.vmId"},
		"hostname": {edit: func(c *unstructured.Unstructured) { setSpec(t, c, first.GetName(), "hostname") }, field: "spec.hostname"},
		"ip": {edit: func(c *unstructured.Unstructured) {
			setSpec(t, c, first.Object["spec"].(map[string]any)["network"].(map[string]any)["ip"], "network", "ip")
		}, field: "spec.network.ip"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, _ := machineClaim(t, "dns01", ns)
			tc.edit(c)
			if err := cp.Apply(ctxFor(t), c); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the claim to be Valid=False naming "+tc.field, claimValid(cp, ns, c.GetName(), "False", tc.field+": "))
			holder := "of Machine " + first.GetNamespace() + "/" + first.GetName()
			waitFor(t, "the refusal to name the holder", claimValid(cp, ns, c.GetName(), "False", holder))
			time.Sleep(time.Second)
			for _, gvk := range []schemaGVK{gvkVM, gvkFile} {
				if objs, err := composedOf(ctxFor(t), cp, gvk, ns, c.GetName()); err != nil || len(objs) != 0 {
					t.Errorf("the refused claim has %d %s (err %v)", len(objs), gvk.Kind, err)
				}
			}
		})
	}
	t.Cleanup(func() {
		if st, found := n.Sim.VM(int(id)); found && st.Clones != 1 {
			t.Errorf("VM %d was cloned %d times", id, st.Clones)
		}
	})
}

// TestDeleteHungGuest: deleting a machine whose guest hangs (it answers no
// ACPI request) does not wait bpg's 30-minute shutdown timeout: the VM is
// stopped, then destroyed.
func TestDeleteHungGuest(t *testing.T) {
	t.Parallel()
	cp, n := stackWithNode(t)
	claim, id := machineClaim(t, "docker01", newNamespace(t, cp, "hung"))
	if err := cp.Apply(ctxFor(t), claim); err != nil {
		t.Fatal(err)
	}
	waitSim(t, n, id, "boot", func(st proxmoxsim.VMState) (bool, string) { return st.Boot.Booted, st.Status })
	if err := n.Sim.HaltGuest(int(id)); err != nil {
		t.Fatal(err)
	}
	if err := cp.Client.Delete(ctxFor(t), claim); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitWithin(t, providerTimeout, "the hung VM to be destroyed", func(context.Context) (bool, string, error) {
		_, found := n.Sim.VM(int(id))
		return !found, "still there", nil
	})
	t.Logf("hung VM destroyed %s after the delete", time.Since(start).Round(time.Second))
	for _, r := range n.Sim.Requests() {
		if r.Path == fmt.Sprintf("/api2/json/nodes/pve1/qemu/%d/status/shutdown", id) {
			t.Errorf("the provider asked the hung guest to shut down (it would wait for the timeout): %s", r)
		}
	}
}

type schemaGVK = schema.GroupVersionKind

func mkdir(p string) error { return os.MkdirAll(p, 0o755) }
func rmdir(p string) error { return os.Remove(p) }
