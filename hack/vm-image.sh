#!/usr/bin/env bash
# Builds the STAND-IN for the NixOS template that the VM suite (test/vm) boots:
# a Debian trixie guest with real systemd, real cloud-init, nix-bin (Nix 2.26),
# git, the cloud kernel, our nix-gitops binary, our stand-in of NixOS's
# switch-to-configuration-ng (internal/stcstandin, built by the VM suite),
# and a NixOS-shaped "generation 0" system (the template's own system: its
# units, its /etc, its profile generation) that the guest runs when it first
# boots.
# The real template is NixOS; it cannot be built offline (no nixpkgs), so the
# suite proves the bootstrap and the activation on this stand-in instead.
#
#   hack/vm-image.sh --agent PATH --stc PATH --template-system DIR
#                          prints image=, kernel=, initrd= lines; --stc is the
#                          activation stand-in's binary (test/vm/stc); DIR
#                          holds the generation 0 expression (default.nix,
#                          attribute toplevel), written by internal/testflake
#   hack/vm-image.sh --base-only
#                          builds only the slow cached layer (debootstrap) and
#                          prints base=; `make test` may start it early, in
#                          the background, while the unit tests run
#
# Two cached layers, in a folder outside the repo (HOMELAB_VM_CACHE, default
# ~/.cache/homelab-infra/vm-image), each built only when missing:
#   base-KEY/   the debootstrapped root tree, kernel and initrd. KEY hashes the
#               base section of this script and the package list, so a package
#               change rebuilds it (minutes, cold).
#   image-KEY.qcow2  base + agent and stand-in binaries + generation 0, as a
#               qcow2 disk. KEY hashes the base key, the binaries, the
#               generation 0 expression and the image section of this script,
#               so a new agent costs seconds.
# Each run marks the two layers it uses; layers no run has used for two hours
# are deleted (hack/vm-cache-prune.sh), so checkouts sharing the cache (whose
# scripts may differ) keep each other's while they run.
# Disks are made with `mkfs.ext4 -d` from a folder, and every chroot runs in a
# private mount namespace (unshare): nothing is mounted on the host, so nothing
# can be left mounted. Guests boot the disk with -kernel/-initrd.
# Needs root (debootstrap, chroot, file owners in the image), debootstrap,
# qemu-utils and e2fsprogs (hack/deps.sh installs them).
set -euo pipefail

agent= stcbin= gen0= base_only=
while [ $# -gt 0 ]; do
  case $1 in
    --agent) agent=$2; shift 2 ;;
    --stc) stcbin=$2; shift 2 ;;
    --template-system) gen0=$2; shift 2 ;;
    --base-only) base_only=1; shift ;;
    *) echo "vm-image: unknown argument $1 (usage: $0 --agent PATH --stc PATH --template-system DIR | --base-only)" >&2; exit 2 ;;
  esac
done
if [ -z "$base_only" ]; then
  if [ -z "$agent" ] || [ ! -x "$agent" ]; then
    echo "vm-image: --agent must name the nix-gitops binary to install (got '$agent')" >&2
    exit 2
  fi
  if [ -z "$stcbin" ] || [ ! -x "$stcbin" ]; then
    echo "vm-image: --stc must name the activation stand-in's binary to install (got '$stcbin')" >&2
    exit 2
  fi
  if [ -z "$gen0" ] || [ ! -f "$gen0/default.nix" ]; then
    echo "vm-image: --template-system must name a folder holding the generation 0 expression, default.nix (got '$gen0')" >&2
    exit 2
  fi
  gen0=$(cd "$gen0" && pwd)
fi
if [ "$(id -u)" != 0 ]; then
  echo "vm-image: must run as root (debootstrap, chroot and the image's file owners need it)" >&2
  exit 2
fi

log() { echo "vm-image: $*" >&2; }
here=$(cd "$(dirname "$0")" && pwd)
cache=${HOMELAB_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/homelab-infra/vm-image}
# Downloaded .debs are kept apart from the keyed layers, so a package change
# re-downloads only what changed.
debs="$cache/debs"
mkdir -p "$cache" "$debs"
# One builder at a time per cache; a second run waits instead of racing (the
# VM suite waits for a --base-only build that `make test` started earlier).
exec 9>"$cache/.lock"
flock 9

suite=trixie
# Packages of the stand-in template, beyond debootstrap's minbase:
pkgs=(
  systemd-sysv udev dbus      # systemd as PID 1; hostnamectl talks D-Bus
  systemd-resolved            # applies the nameservers cloud-init renders for networkd
  linux-image-cloud-amd64     # the cloud kernel: virtio built in, small
  initramfs-tools
  cloud-init                  # real cloud-init 25.x reading the NoCloud seed
  nix-bin                     # Nix 2.26, what nix-gitops drives
  git                         # nix's git fetcher and nix-gitops' clone
  openssh-server              # the template has SSH; cloud-init writes the admin's keys for it
  sudo                        # the admin user's sudo rule
  jq                          # the stand-in system's pre-switch check compares switch-inhibitors JSON
  unbound                     # dns01's resolver; the systems that run it carry its unit and config
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
  # debootstrap mounts /proc and /sys in the target; in a namespace of its
  # own those mounts die with it, even when a build is killed halfway (one
  # run in the host's namespace left a /proc mounted in the cache).
  unshare --mount --propagation private -- \
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
  # Only the NoCloud seed is a datasource, so cloud-init never probes a cloud
  # metadata address; networkd is what the NixOS template renders for too.
  printf '%s\n' 'datasource_list: [NoCloud, None]' 'system_info:' '  network:' '    renderers: [networkd]' \
    >"$root/etc/cloud/cloud.cfg.d/90-homelab-template.cfg"
  # Nix in the guest: flakes on, no binary cache (the guest reaches nothing
  # but the test's git server), builds as root without build users.
  mkdir -p "$root/etc/nix"
  printf '%s\n' 'experimental-features = nix-command flakes' 'substituters =' 'sandbox = false' 'build-users-group =' \
    >"$root/etc/nix/nix.conf"
  systemctl --root="$root" enable systemd-networkd.service systemd-resolved.service >/dev/null 2>&1
  # unbound runs only in the systems that carry its unit (dns01's): Debian's
  # units stay off, and resolved's stub listener leaves port 53 to it.
  systemctl --root="$root" disable unbound.service unbound-resolvconf.service >/dev/null 2>&1 || true
  mkdir -p "$root/etc/systemd/resolved.conf.d"
  printf '%s\n' '[Resolve]' 'DNSStubListener=no' >"$root/etc/systemd/resolved.conf.d/90-homelab-template.conf"
  # The initrd and kernel are booted directly (-kernel/-initrd): no boot loader.
  cp "$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n1)" "$base.tmp/vmlinuz"
  cp "$(ls "$root"/boot/initrd.img-* | sort -V | tail -n1)" "$base.tmp/initrd.img"
  touch "$base.tmp/ok"
  rm -rf "$base"
  mv "$base.tmp" "$base"
  log "base image ready: $base"
fi
# --- end of base layer ------------------------------------------------------
# This run uses this base; other bases go once no run has used them for two
# hours: another checkout's script may differ (a package more), and its run
# may be booting its base's kernel right now (hack/vm-cache-prune.sh).
"$here/vm-cache-prune.sh" "$cache" "base-$basekey"
if [ -n "$base_only" ]; then
  echo "base=$base"
  exit 0
fi

# --- image layer ------------------------------------------------------------
# What the stand-in adds to the base to look like a NixOS template where
# switch-to-configuration-ng, the agent and a test read it:
#   /usr/local/bin/nix-gitops      the agent under test; generation 0's agent
#                                  package copies it into the store
#   /usr/lib/homelab-standin/switch-to-configuration
#                                  the activation stand-in (internal/stcstandin)
#   /usr/lib/homelab-standin/boot  stand-in for the boot loader's choice: the
#                                  kernel command line says init= this script;
#                                  it runs the boot default's own stage-2 init
#                                  (the toplevel's init, as NixOS's boot entries
#                                  do), which activates that system and then
#                                  starts systemd
#   /etc/NIXOS                     what switch-to-configuration checks
#   generation 0                   built in the image's own store from DIR,
#                                  made system profile generation 1, the boot
#                                  default, and activated (its /etc links)
standin=/usr/lib/homelab-standin
boot_script() {
  printf '%s\n' '#!/bin/sh' \
    '# Stand-in for the boot loader (test only): boot the default entry, as' \
    '# switch-to-configuration'"'"'s install-bootloader step last recorded it, by' \
    '# running that system'"'"'s stage-2 init; fall back to the system profile.' \
    'sys=$(/usr/bin/readlink -f /boot/homelab-standin/default)' \
    '[ -x "$sys/init" ] || sys=$(/usr/bin/readlink -f /nix/var/nix/profiles/system)' \
    'exec "$sys/init" "$@"'
}
layerkey=$( { echo "$basekey"; sha256sum <"$agent"; sha256sum <"$stcbin"; (cd "$gen0" && find . -type f -print0 | sort -z | xargs -0 sha256sum); sed -n '/^# --- image layer/,$p' "$0"; } | sha256sum | cut -c1-16)
image="$cache/image-$layerkey.qcow2"
if [ ! -e "$image" ]; then
  log "building the image layer on $base"
  tmp="$cache/image-$layerkey.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # Hard links keep this cheap. Anything written in place must be copied
  # first, so the cached base is never modified: /etc (the activation relinks
  # it) and Nix's database (generation 0 is built into the store).
  cp -al "$base/root" "$tmp/root"
  root="$tmp/root"
  for d in etc nix/var/nix; do
    [ -e "$base/root/$d" ] || continue
    rm -rf "${root:?}/$d"
    cp -a "$base/root/$d" "$root/$d"
  done
  install -m 0755 "$agent" "$root/usr/local/bin/nix-gitops"
  install -D -m 0755 "$stcbin" "$root$standin/switch-to-configuration"
  boot_script >"$tmp/boot"
  install -m 0755 "$tmp/boot" "$root$standin/boot"
  touch "$root/etc/NIXOS"
  mkdir -p "$root/tmp/gen0"
  cp -r "$gen0/." "$root/tmp/gen0/"
  # Generation 0, inside the image (its own Nix 2.26 and store).
  unshare --mount --propagation private -- sh -c '
    set -e
    root=$1
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -c "
      set -e
      out=\$(nix-build /tmp/gen0 -A toplevel --no-out-link)
      nix-env -p /nix/var/nix/profiles/system --set \"\$out\"
      \"\$out/bin/install-bootloader\" \"\$out\"
      \"\$out/activate\"
      rm -f /run/current-system
      echo \"\$out\"
    "' sh "$root" >"$tmp/gen0.out" 2>"$tmp/gen0.log" || {
    cat "$tmp/gen0.log" >&2
    echo "vm-image: cannot build or activate generation 0 in the image" >&2
    exit 1
  }
  rm -rf "$root/tmp/gen0"
  log "generation 0: $(tail -n1 "$tmp/gen0.out")"
  # The monitoring module's textfile folder (it makes it with tmpfiles).
  mkdir -p "$root/var/lib/prometheus-node-exporter/textfile"
  truncate -s 4G "$tmp/root.raw"
  mkfs.ext4 -q -F -L root -d "$root" "$tmp/root.raw"
  qemu-img convert -f raw -O qcow2 "$tmp/root.raw" "$tmp/image.qcow2"
  mv "$tmp/image.qcow2" "$image"
  rm -rf "$tmp"
  log "image ready: $image"
fi
# The same for image layers: another checkout's run (a second worktree, make
# bench beside make test) may be booting overlays of its own.
"$here/vm-cache-prune.sh" "$cache" "image-$layerkey.qcow2"

echo "image=$image"
echo "kernel=$base/vmlinuz"
echo "initrd=$base/initrd.img"
