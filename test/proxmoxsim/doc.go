// Package proxmoxsim is the one fake in the control-plane suite: a simulator
// of a Proxmox VE cluster's HTTP API (TLS on loopback), standing in for the
// cluster because none can run here. Everything in front of it is real: the
// provider and bpg's code talk to it exactly as they would to pve1, and the
// snippet upload goes over real SSH to a real OpenSSH sshd per node
// (sshd.go), logged in as the unprivileged user the documented node set-up
// (deploy/proxmox/node.sh) makes.
//
// What it enforces comes from Proxmox's own data first:
//
//   - the release's published API schema (pve-docs' apidata.js for PVE 9.1
//     and 8.4, read from ../shared/pve-api through PVE_API_DIR, never
//     copied; pveapi.go): a method the release does not have is 501, every
//     parameter is validated as PVE's JSONSchema validates it (unknown
//     parameters, types, enums, patterns, ranges, lengths, and the keys of
//     the property strings the schema describes), with Proxmox's error
//     shape (jsonschema.go); the named formats the schema only names are
//     implemented from the code that registers them (formats.go);
//   - each method's permission check from the schema, and the checks
//     Proxmox makes in code (qemuperms.go), against users, roles, ACLs,
//     pools and API tokens that come from the same pveum set-up script the
//     README documents (pveum.go, access.go); the privileges a release
//     knows are those its schema names.
//
// Behaviour beyond the data follows Proxmox's source, and each rule's
// comment names the file and commit it follows (qemu-server, pve-storage,
// pve-access-control, pve-common, pve-manager, pve-guest-common):
//
//   - a full clone copies the template's config (clone.go);
//   - config updates go to the pending section; a stopped VM applies them,
//     a running one only what hotplugs, the rest at the next cold start
//     (config.go, hotplug.go); the POST variant runs the update in a task,
//     so what qemu-server checks inside the update fails the task;
//   - a cold start regenerates the cloud-init drive and reads the cicustom
//     snippets from the VM's node; a missing snippet fails the start
//     (guest.go);
//   - the firmware boots only devices with a boot index: the boot order,
//     or without one the legacy "cdn", whose disk is 'bootdisk' (guest.go);
//   - a shutdown or reboot of a guest that does not answer fails after its
//     timeout, leaving the changes pending (guest.go);
//   - tasks carry the token in their UPID, end OK, WARNINGS: n or the
//     error, and only their owner (or Sys.Audit) reads them (tasks.go);
//   - a cluster of several nodes, each with its own local storages; a VM
//     lives on one node (cluster.go, vm.go);
//   - pvesm set replaces a storage's content list with the one given
//     (pvesm.go, for the README's storage step run as a user runs it);
//   - a loaded node may refuse a task ("got no worker upid"); the simulator
//     refuses the first Options.RefuseClones clones so (clone.go);
//   - a node maps a guest's memory only up to Node.MemoryMiB: a start
//     asking for more fails as QEMU fails it (guest.go, SetNodeMemory);
//   - a thick LVM volume group (Storage.Size) grows a disk only into its
//     free extents, as lvextend does; thin pools overcommit (vmops.go,
//     SetStorageSize).
//
// Nothing is refused without a source: a format whose code the simulator
// lacks is not checked, and Sim.UncheckedFormats lists those met.
//
// Tests read what happened through Sim's methods (VM, Requests,
// ConfigWrites), never through the provider.
package proxmoxsim
