#!/bin/sh
# testflake stand-in for NixOS's stage-2 init (a fake), which the boot
# loader stand-in runs for the boot default: record the booted system,
# activate it, hand over to systemd.
/usr/bin/mountpoint -q /run || /bin/mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
/bin/ln -sfn @out@ /run/booted-system
@out@/activate
exec @systemd@/lib/systemd/systemd "$@"
