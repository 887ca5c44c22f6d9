// Package proxmoxsim is the one fake in the control-plane suite: a simulator
// of the Proxmox VE HTTP API (TLS on loopback), standing in for a Proxmox
// node because none can run here. Everything in front of it is real:
// provider-proxmox-bpg, bpg's Terraform provider and the terraform CLI talk
// to it exactly as they would to pve1, and the snippet upload goes over real
// SSH to a real OpenSSH sshd (sshd.go) that writes into the folder the
// simulator reads snippets from.
//
// It implements the endpoints bpg v0.111.1 calls for a cloned VM and a
// snippet file (create, read, update, delete), checks their parameters
// against qemu-server's option schema where the rule is known, and models
// the behaviour this project depends on. Each rule carries a comment naming
// the Proxmox (qemu-server, pve-storage, pve-common) or bpg source it
// follows:
//
//   - a full clone copies the template's config: its disks (as new volumes of
//     the same size and content), its cloud-init drive, serial0, its boot
//     order; NICs get new MAC addresses (clone.go);
//   - a disk named in a config update that the VM lacks is allocated as a new,
//     empty disk; a known disk keeps its volume; resize grows and refuses to
//     shrink (config.go, disks.go);
//   - a cold start regenerates the cloud-init drive and reads cicustom
//     snippets from the snippets folder at that moment; a missing snippet
//     fails the start (guest.go);
//   - the guest boots the first device of the boot order (or of Proxmox's
//     default order) that holds an operating system; if none does, the VM
//     runs but boots nothing, which the simulator reports as "no bootable
//     disk" (guest.go);
//   - VM ids below 100 or already in use are refused; a locked VM answers
//     "VM is locked (<lock>)" (clone.go, config.go);
//   - the guest agent answers only once the guest has booted, and reports the
//     static address cloud-init configured or a DHCP lease from the VLAN's
//     DHCP server (guest.go);
//   - a shutdown of a guest that never booted is not answered until its
//     timeout (guest.go);
//   - a loaded node may refuse a task ("got no worker upid"); the simulator
//     refuses the first Options.RefuseClones clones so (clone.go).
//
// Tests read what happened through Sim's methods (VM, Requests,
// ConfigWrites), never through the provider.
package proxmoxsim
