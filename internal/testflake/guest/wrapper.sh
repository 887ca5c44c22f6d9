#!/bin/sh
# testflake stand-in for the wrapper switchable-system.nix makes with
# makeWrapper around pkgs.switch-to-configuration-ng: the same variables,
# then the program, here the activation stand-in (internal/stcstandin),
# which hack/vm-image.sh installs in the image.
export OUT=@out@
export TOPLEVEL=@out@
export DISTRO_ID=nixos
export INSTALL_BOOTLOADER=@out@/bin/install-bootloader
export PRE_SWITCH_CHECK=@out@/bin/pre-switch-checks
export SYSTEMD=@systemd@
unset RUST_BACKTRACE
exec @stc@ "$@"
