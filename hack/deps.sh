#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, and nothing when it
# is already there. Idempotent and quiet on a warm machine.
#
#   hack/deps.sh            Debian packages used by the tests
#
# Each package is listed with the tests that need it.
set -euo pipefail

pkgs=(
  git            # the agent's fetches and every test repo
  nix-bin        # real nix for the agent tests and the .nix checks (Nix 2.8)
  openssh-client # agent: ssh-keygen for SSH-signed commits, ssh for the deploy-key fetch
  openssh-server # agent: a real sshd on loopback serves git to the deploy-key test
  gnupg          # agent: GPG-signed commits and their verification
  strace         # agent: the secrets test records every child's argv (execve)
  systemd        # agent: systemd-analyze verify checks the generated units
  python3        # internal/nixcheck parses the NixOS VM test's Python testScript
  ca-certificates
  unbound        # internal/nixcheck: unbound-checkconf and a real resolver check dns01's rendered unbound.conf
  # VM suite (test/vm, make vm-e2e):
  qemu-system-x86 # boots the stand-in template guest (TCG: KVM hangs guests here)
  qemu-utils     # qemu-img: the image's qcow2 and each test's overlay disk
  debootstrap    # builds the Debian trixie stand-in template (hack/vm-image.sh)
  e2fsprogs      # mkfs.ext4 -d: the guest's disk from a folder, with nothing mounted
  socat          # guestfwd: one socat per guest connection to the loopback git server
  # Rollout suite (test/rollout, make rollout-e2e): the harness's real node
  containerd     # the kubelet's container runtime (1.6: the last the 1.35 kubelet supports)
  runc           # containerd's runtime (crun refuses this machine's hybrid cgroups)
  containernetworking-plugins # pod networking: bridge, host-local, loopback
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  echo "deps: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
