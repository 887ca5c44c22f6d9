#!/usr/bin/env bash
# The provider's API token: run once, as root, on any node of the Proxmox VE
# cluster (8 or 9). It creates the user, one role per kind of object with only
# the privileges the provider's calls need there, the ACLs, and a token that
# has exactly the user's privileges (no privilege separation). The token's
# secret is printed once: put it in the provider's credentials Secret
# (crossplane/provider/providerconfig.yaml).
#
#   deploy/proxmox/token.sh                     # the defaults below
#   VM_STORAGE=ceph-vm SNIPPET_STORAGE=cephfs deploy/proxmox/token.sh
#
# The control-plane tests run this very file against the simulated cluster
# (test/proxmoxsim RunPveumScript), so what it grants is what the suite's
# provider gets.
set -euo pipefail

user=${PVE_USER:-crossplane@pve}
token=${PVE_TOKEN_NAME:-provider}
vm_storage=${VM_STORAGE:-local-lvm}          # the Composition's defaults.storage
snippet_storage=${SNIPPET_STORAGE:-local}    # the Composition's defaults.snippetDatastore
zone=${SDN_ZONE:-localnetwork}               # plain Linux bridges (vmbr0) are in this zone
major=${PVE_MAJOR:-$(pveversion | sed -n 's|^pve-manager/\([0-9]*\)\..*|\1|p')}

# Reading the guest agent's addresses: PVE 9 split VM.Monitor up.
case "$major" in
  8) agent_audit=VM.Monitor ;;
  9) agent_audit=VM.GuestAgent.Audit ;;
  *) echo "token.sh: Proxmox VE $major is not supported (8 or 9; set PVE_MAJOR)" >&2; exit 1 ;;
esac

pveum user add "$user" --comment "homelab-infra provider (Crossplane)"

# The machines: clone the template, configure, start, reboot, stop, read,
# read the guest agent's addresses, destroy. VM.Config.CDROM with
# VM.Config.Cloudinit: qemu-server checks both for any change of a VM's
# cloud-init drive.
pveum role add HomelabVM --privs "VM.Allocate VM.Clone VM.Audit VM.PowerMgmt \
VM.Config.CPU VM.Config.Memory VM.Config.Disk VM.Config.CDROM VM.Config.Cloudinit \
VM.Config.Network VM.Config.Options $agent_audit"
pveum acl modify /vms --users "$user" --roles HomelabVM

# The disks' datastore: space for the clones' disks and cloud-init drives.
pveum role add HomelabDisks --privs "Datastore.AllocateSpace Datastore.Audit"
pveum acl modify "/storage/$vm_storage" --users "$user" --roles HomelabDisks

# The snippets' datastore: its path (to write a snippet over SSH), its
# listing, a snippet's deletion, and a VM's cicustom pointing at a snippet
# all need Datastore.Allocate there, and only there.
pveum role add HomelabSnippets --privs "Datastore.Allocate Datastore.AllocateSpace Datastore.Audit"
pveum acl modify "/storage/$snippet_storage" --users "$user" --roles HomelabSnippets

# The bridges the NICs use (and that the node's network list shows).
pveum role add HomelabBridges --privs "SDN.Use"
pveum acl modify "/sdn/zones/$zone" --users "$user" --roles HomelabBridges

pveum user token add "$user" "$token" --privsep 0 --comment "homelab-infra provider"
