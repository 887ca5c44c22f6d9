#!/usr/bin/env bash
# Marks a layer of the VM image cache (hack/vm-image.sh) as used by this run
# and deletes the other layers of its kind that no run has used for a while.
#
#   hack/vm-cache-prune.sh CACHE LAYER
#     LAYER is base-KEY (a debootstrapped base) or image-KEY.qcow2 (an image
#     layer); the other base-* or image-*.qcow2 entries of CACHE untouched
#     for two hours are deleted.
#
# Several checkouts share one cache (the main worktree, a branch's worktree,
# make bench beside make test), and their scripts can differ: a branch that
# adds a package has a base of its own. A layer in use must survive the other
# checkout's run: each run touches the layers it uses, which QEMU then reads
# for the rest of the run (the kernel and initrd in the base, the image under
# each boot's overlay), and a suite run is well under the two hours.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 CACHE LAYER" >&2
  exit 2
fi
cache=$1 layer=$2
case $layer in
  */*) echo "vm-cache-prune: $layer is not a layer name" >&2; exit 2 ;;
  base-*) kind='base-*' ;;
  image-*.qcow2) kind='image-*.qcow2' ;;
  *) echo "vm-cache-prune: $layer is neither base-KEY nor image-KEY.qcow2" >&2; exit 2 ;;
esac
if [ ! -e "$cache/$layer" ]; then
  echo "vm-cache-prune: $cache/$layer does not exist" >&2
  exit 1
fi
touch "$cache/$layer"
# Older layers are dead weight (half a gigabyte or more each).
find "$cache" -mindepth 1 -maxdepth 1 -name "$kind" ! -name "$layer" -mmin +120 -exec rm -rf {} +
