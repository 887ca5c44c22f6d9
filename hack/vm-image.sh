#!/usr/bin/env bash
# Builds the STAND-IN for the NixOS template that the VM suite (test/vm) boots:
# a Debian trixie guest with real cloud-init, nix-bin (Nix 2.26), git, the
# cloud kernel, our nix-gitops binary and the same nix-gitops-apply units the
# NixOS template uses (emitted by the agent binary, never written here).
# The real template is NixOS; it cannot be built offline (no nixpkgs), so the
# suite proves the bootstrap on this stand-in instead.
#
#   hack/vm-image.sh --agent PATH    prints image=, kernel=, initrd= lines
#
# Two cached layers, in a folder outside the repo (HOMELAB_VM_CACHE, default
# ~/.cache/homelab-infra/vm-image), each built only when missing:
#   base-KEY/   the debootstrapped root tree, kernel and initrd. KEY hashes this
#               script, so a package change rebuilds it (minutes, cold).
#   image-KEY.qcow2  base + agent binary + units, as a qcow2 disk. KEY hashes
#               the base key, the binary and the units, so a new agent binary
#               costs seconds, not a debootstrap.
# The disk is made with `mkfs.ext4 -d` from a folder: nothing is ever mounted,
# so nothing can be left mounted. Guests boot it with -kernel/-initrd.
# Needs root (debootstrap, and file owners in the image), debootstrap,
# qemu-utils and e2fsprogs (hack/deps.sh installs them).
set -euo pipefail

agent=
while [ $# -gt 0 ]; do
  case $1 in
    --agent) agent=$2; shift 2 ;;
    *) echo "vm-image: unknown argument $1 (usage: $0 --agent PATH)" >&2; exit 2 ;;
  esac
done
if [ -z "$agent" ] || [ ! -x "$agent" ]; then
  echo "vm-image: --agent must name the nix-gitops binary to install (got '$agent')" >&2
  exit 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "vm-image: must run as root (debootstrap and the image's file owners need it)" >&2
  exit 2
fi

log() { echo "vm-image: $*" >&2; }
cache=${HOMELAB_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/homelab-infra/vm-image}
# Downloaded .debs are kept apart from the keyed layers, so a package change
# re-downloads only what changed.
debs="$cache/debs"
mkdir -p "$cache" "$debs"
# One builder at a time per cache; a second test run waits instead of racing.
exec 9>"$cache/.lock"
flock 9

suite=trixie
# Packages of the stand-in template, beyond debootstrap's minbase:
pkgs=(
  systemd-sysv udev dbus      # systemd as PID 1; hostnamectl needs dbus
  systemd-resolved            # applies the nameservers cloud-init renders for networkd
  linux-image-cloud-amd64     # the cloud kernel: virtio built in, small
  initramfs-tools
  cloud-init                  # real cloud-init 25.x reading the NoCloud seed
  nix-bin                     # Nix 2.26, what nix-gitops drives
  git                         # nix's git fetcher and nix-gitops' clone
  openssh-server              # the template has SSH; cloud-init writes the admin's keys for it
  sudo                        # the admin user's sudo rule
  iproute2 netbase kmod procps
  e2fsprogs                   # fsck and resize2fs (cloud-init's resizefs) for the root file system
  # Providers of virtual packages, which debootstrap's resolver cannot pick:
  python3-cffi-backend        # python3-cffi-backend-api-* (python3-cryptography, for cloud-init)
  libdbi-perl                 # perl-dbdabi-94 (libdbd-sqlite3-perl, for nix-bin)
)

# The mirror is the host's own Debian mirror (from its apt sources), so the
# image comes from the same place as every other package on this machine.
mirror() {
  if [ -n "${HOMELAB_DEBIAN_MIRROR:-}" ]; then echo "$HOMELAB_DEBIAN_MIRROR"; return; fi
  local u
  u=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2}' | grep -v -- '-security' | head -n1 || true)
  [ -n "$u" ] || u=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | grep -v -- '-security' | awk '{print $2}' | head -n1 || true)
  if [ -z "$u" ]; then
    echo "vm-image: cannot find a Debian mirror in the host's apt sources; set HOMELAB_DEBIAN_MIRROR" >&2
    exit 1
  fi
  echo "$u"
}

# --- base layer -------------------------------------------------------------
basekey=$(sed -n '/^# --- base layer/,/^# --- end of base layer/p' "$0" | cat - <(echo "$suite ${pkgs[*]}") | sha256sum | cut -c1-16)
base="$cache/base-$basekey"
if [ ! -e "$base/ok" ]; then
  log "building the base image ($suite, debootstrap; several minutes cold)"
  rm -rf "$base.tmp"
  mkdir -p "$base.tmp"
  root="$base.tmp/root"
  inc=$(IFS=,; echo "${pkgs[*]}")
  debootstrap --variant=minbase --components=main --cache-dir="$debs" --include="$inc" "$suite" "$root" "$(mirror)" >"$base.tmp/debootstrap.log" 2>&1 || {
    tail -n 30 "$base.tmp/debootstrap.log" >&2
    echo "vm-image: debootstrap failed (full log: $base.tmp/debootstrap.log)" >&2
    exit 1
  }
  # A template is generic: no machine id, no SSH host keys, no apt lists;
  # first boot makes its own identity (as Proxmox templates do).
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  echo template >"$root/etc/hostname"
  echo 'LABEL=root / ext4 defaults 0 1' >"$root/etc/fstab"
  # Only the NoCloud seed is a datasource, so cloud-init never probes a cloud
  # metadata address; networkd is what the NixOS template renders for too.
  cat >"$root/etc/cloud/cloud.cfg.d/90-homelab-template.cfg" <<'EOF'
datasource_list: [NoCloud, None]
system_info:
  network:
    renderers: [networkd]
EOF
  # Nix in the guest: flakes on, no binary cache (the guest reaches nothing
  # but the test's git server), builds as root without build users.
  mkdir -p "$root/etc/nix"
  cat >"$root/etc/nix/nix.conf" <<'EOF'
experimental-features = nix-command flakes
substituters =
sandbox = false
build-users-group =
EOF
  systemctl --root="$root" enable systemd-networkd.service systemd-resolved.service >/dev/null 2>&1
  # The initrd and kernel are booted directly (-kernel/-initrd): no boot loader.
  cp "$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n1)" "$base.tmp/vmlinuz"
  cp "$(ls "$root"/boot/initrd.img-* | sort -V | tail -n1)" "$base.tmp/initrd.img"
  touch "$base.tmp/ok"
  rm -rf "$base"
  mv "$base.tmp" "$base"
  log "base image ready: $base"
fi
# --- end of base layer ------------------------------------------------------
# Bases of older package lists are dead weight (half a gigabyte each).
find "$cache" -mindepth 1 -maxdepth 1 -name 'base-*' ! -name "base-$basekey" -exec rm -rf {} +

# The agent's own units, exactly as the NixOS template gets them. This is the
# one step that knows how the agent emits them.
agent_units() { # out dir
  "$agent" units --bin /usr/local/bin/nix-gitops --dir "$1"
}

layerkey=$( { echo "$basekey"; sha256sum <"$agent"; sed -n '/^agent_units()/,/^}/p;/^# --- agent layer/,$p' "$0"; } | sha256sum | cut -c1-16)
image="$cache/image-$layerkey.qcow2"
# --- agent layer ------------------------------------------------------------
if [ ! -e "$image" ]; then
  log "building the agent layer on $base"
  tmp="$cache/image-$layerkey.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # Hard links keep this cheap; only new paths are written below, so the
  # cached base tree is never modified.
  cp -al "$base/root" "$tmp/root"
  install -m 0755 "$agent" "$tmp/root/usr/local/bin/nix-gitops"
  units="$tmp/units"
  mkdir -p "$units"
  agent_units "$units"
  n=0
  for u in "$units"/*; do
    [ -f "$u" ] || continue
    install -m 0644 "$u" "$tmp/root/etc/systemd/system/$(basename "$u")"
    n=$((n + 1))
  done
  if [ "$n" = 0 ]; then echo "vm-image: the agent emitted no units" >&2; exit 1; fi
  # Enabled as the NixOS module enables it; the timer and daemon stay opt-in.
  systemctl --root="$tmp/root" enable nix-gitops-apply.service >/dev/null 2>&1
  # The template's agent config, as the NixOS module would write it: the
  # defaults, plus the monitoring module's textfile (and its folder, which
  # that module makes with tmpfiles).
  mkdir -p "$tmp/root/etc/nix-gitops" "$tmp/root/var/lib/prometheus-node-exporter/textfile"
  echo '{"metrics":{"textfile":"/var/lib/prometheus-node-exporter/textfile/nix-gitops.prom"}}' >"$tmp/root/etc/nix-gitops/config.json"
  truncate -s 4G "$tmp/root.raw"
  mkfs.ext4 -q -F -L root -d "$tmp/root" "$tmp/root.raw"
  qemu-img convert -f raw -O qcow2 "$tmp/root.raw" "$tmp/image.qcow2"
  mv "$tmp/image.qcow2" "$image"
  rm -rf "$tmp"
  # Older agent layers are dead weight once a newer one exists.
  find "$cache" -maxdepth 1 -name 'image-*.qcow2' ! -name "image-$layerkey.qcow2" -delete
  log "image ready: $image"
fi

echo "image=$image"
echo "kernel=$base/vmlinuz"
echo "initrd=$base/initrd.img"
