#!/bin/sh
# testflake stand-in for system.build.installBootLoader (a fake: the guest
# boots its kernel from the host). As a NixOS boot loader does, it makes the
# given system the boot default and lists one boot entry per generation of
# the system profile; the image's boot stand-in boots the default.
set -e
d=/boot/homelab-standin
/bin/mkdir -p "$d"
/bin/ln -sfn "$1" "$d/.default.tmp"
/bin/mv -T "$d/.default.tmp" "$d/default"
for l in /nix/var/nix/profiles/system-*-link; do
  [ -e "$l" ] || continue
  n=${l#/nix/var/nix/profiles/system-}
  echo "${n%-link} $(/usr/bin/readlink "$l")"
done | /usr/bin/sort -n >"$d/.entries.tmp"
/bin/mv "$d/.entries.tmp" "$d/entries"
