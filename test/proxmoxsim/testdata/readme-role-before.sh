# The API token set-up the README documented until issue 18 (PVE 9 variant),
# word for word: its role lacks VM.Config.CDROM. TestREADMERoleBefore replays
# bpg's create with it.
pveum user add crossplane@pve
# PVE 9:
pveum role add HomelabMachines -privs "VM.Allocate VM.Clone VM.Audit VM.PowerMgmt VM.GuestAgent.Audit \
  VM.Config.CPU VM.Config.Memory VM.Config.Disk VM.Config.Network VM.Config.Cloudinit VM.Config.Options \
  VM.Config.HWType Datastore.Audit Datastore.AllocateSpace Datastore.Allocate Sys.Audit SDN.Use"
# PVE 8: the same with VM.Monitor in place of VM.GuestAgent.Audit (PVE 9 split VM.Monitor up).
pveum aclmod /vms -user crossplane@pve -role HomelabMachines        # or a pool of theirs and the template
pveum aclmod /storage/local-lvm -user crossplane@pve -role HomelabMachines
pveum aclmod /storage/local -user crossplane@pve -role HomelabMachines
pveum aclmod /nodes/pve1 -user crossplane@pve -role HomelabMachines   # Sys.Audit: the node's network list
pveum aclmod /sdn/zones/localnetwork -user crossplane@pve -role HomelabMachines   # SDN.Use: the bridges
pveum user token add crossplane@pve provider --privsep 0             # prints crossplane@pve!provider=<uuid>
