#!/usr/bin/env bash
# The provider's API token: run once, as root, on any node of the Proxmox VE
# cluster (8 or 9). It creates the user, one role per kind of object with only
# the privileges the provider's calls need there, the ACLs, and a token that
# has exactly the user's privileges (no privilege separation). The token's
# secret is printed once: put it in the provider's credentials Secret
# (crossplane/provider/providerconfig.yaml).
#
#   deploy/proxmox/token.sh                     # the defaults below
#   VM_STORAGE=ceph-vm SNIPPET_STORAGE=cephfs TEMPLATE_VMIDS="9002 9003" deploy/proxmox/token.sh
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
templates=${TEMPLATE_VMIDS:-9002}            # the Composition's images' templateVmId
pool=homelab                                 # internal/compose Pool: every VM is made in it
major=${PVE_MAJOR:-$(pveversion | sed -n 's|^pve-manager/\([0-9]*\)\..*|\1|p')}

# Reading the guest agent's addresses: PVE 9 split VM.Monitor up.
case "$major" in
  8) agent_audit=VM.Monitor ;;
  9) agent_audit=VM.GuestAgent.Audit ;;
  *) echo "token.sh: Proxmox VE $major is not supported (8 or 9; set PVE_MAJOR)" >&2; exit 1 ;;
esac

pveum user add "$user" --comment "homelab-infra provider (Crossplane)"

# The machines are made in the project's pool and the token's VM privileges
# hold there only: clone (into the pool), configure, start, reboot, stop,
# read the guest agent's addresses, destroy. A VM outside the pool (made by
# hand or by another tool) is out of reach whatever a claim says.
# VM.Config.CDROM with VM.Config.Cloudinit: qemu-server checks both for any
# change of a VM's cloud-init drive. VM.Config.HWType: the SCSI controller
# type (scsihw, one of qemu-server's $hwtypeoptions) is set on each clone to
# the template's, and bpg's update sends it whenever its state lacks it, as
# after a create that Proxmox refused half-way; without it that VM could
# never be finished (TestFailureAfterClone). Pool.Audit: the
# provider reads which pool a VM is in.
pveum pool add "$pool" --comment "homelab-infra machines (Crossplane)"
pveum role add HomelabVM --privs "VM.Allocate VM.Audit VM.PowerMgmt \
VM.Config.CPU VM.Config.Memory VM.Config.Disk VM.Config.CDROM VM.Config.Cloudinit \
VM.Config.Network VM.Config.Options VM.Config.HWType $agent_audit Pool.Audit"
pveum acl modify "/pool/$pool" --users "$user" --roles HomelabVM

# Every VM, read only: whether a claim's VM id is free, and whose an
# existing VM is (its description carries the claim's mark). Nothing is
# changed outside the pool.
pveum role add HomelabAudit --privs "VM.Audit"
pveum acl modify /vms --users "$user" --roles HomelabAudit

# The templates: cloned, never changed (an ACL on a VM replaces what /vms
# grants there).
pveum role add HomelabTemplate --privs "VM.Clone VM.Audit"
for t in $templates; do
  pveum acl modify "/vms/$t" --users "$user" --roles HomelabTemplate
done

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
