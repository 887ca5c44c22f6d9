#!/usr/bin/env bash
# The provider's SSH access to a node, for the cloud-init snippets only:
# run as root on every Proxmox VE node a machine may be placed on.
#
#   PROVIDER_SSH_KEY="$(cat provider_key.pub)" deploy/proxmox/node.sh
#
# The provider (bpg's code) writes a snippet with `/usr/bin/tee <folder>/<file>`
# over SSH, then checks its size over SFTP. It uses sudo only when a sudo rule
# lets it run `pvesm apiinfo` or `qm`, so none is given: its user is not root,
# has no sudo, and may write one folder, the snippets folder of the datastore
# the Composition names (defaults.snippetDatastore, "local": /var/lib/vz).
# The folder belongs to a group of its own (setgid, so new snippets do too);
# qemu-server reads the snippets as root.
#
# The control-plane tests run this very file for each simulated node (test/proxmoxsim
# StartSSHD), and bpg's upload then runs as that user.
set -euo pipefail

user=${PROVIDER_SSH_USER:-crossplane}
group=${PROVIDER_SSH_GROUP:-crossplane-snippets}
snippets=${SNIPPETS_DIR:-/var/lib/vz/snippets}

getent group "$group" >/dev/null || groupadd --system "$group"
if ! id -u "$user" >/dev/null 2>&1; then
  useradd --system --create-home --shell /bin/bash --gid "$group" "$user"
fi
# No password: "*" (useradd leaves "!", a locked account sshd refuses without PAM).
usermod --password '*' "$user"

home=$(getent passwd "$user" | cut -d: -f6)
install -d -m 0700 -o "$user" -g "$group" "$home/.ssh"
if [ -n "${PROVIDER_SSH_KEY:-}" ]; then
  keys="$home/.ssh/authorized_keys"
  touch "$keys"
  grep -qxF "$PROVIDER_SSH_KEY" "$keys" || printf '%s\n' "$PROVIDER_SSH_KEY" >> "$keys"
  chown "$user:$group" "$keys"
  chmod 0600 "$keys"
fi

# root keeps owning the folder; the group may add snippets and replace its own
# (sticky: not remove or rename anyone else's).
install -d -m 3775 -o root -g "$group" "$snippets"
chgrp "$group" "$snippets"
chmod 3775 "$snippets"
