# testflake builder of a NixOS-shaped toplevel (a fake: nixpkgs cannot be
# built offline). /bin/sh with an empty PATH, so tools by absolute path. It
# lays out what switch-to-configuration-ng, the boot stand-in and the agent
# read of a real toplevel (nixos/modules/system/activation/top-level.nix,
# switchable-system.nix):
#   bin/switch-to-configuration  the wrapper switchable-system.nix makes
#   activate, init               the activation script and the stage-2 init
#   etc/                         what the activation links into /etc
#   init-interface-version, switch-inhibitors, kernel, initrd, kernel-params
#   boot.json                    the bootspec document
set -e
if [ "$buildSleep" != 0 ]; then /bin/sleep "$buildSleep"; fi
if [ "$buildFail" = 1 ]; then echo "testflake: build fails on purpose" >&2; exit 1; fi
/bin/mkdir -p "$out/bin" "$out/etc/systemd/system/multi-user.target.wants" "$out/etc/nix-gitops" "$out/etc/testflake"
printf '%s\n' "$version" >"$out/version"
printf '%s\n' "$kernel" >"$out/kernel"
printf '%s\n' "$initrd" >"$out/initrd"
printf '%s' "$kernelParams" >"$out/kernel-params"
printf '%s' "$initInterface" >"$out/init-interface-version"
printf '%s' "$inhibitors" >"$out/switch-inhibitors"
printf '{"org.nixos.bootspec.v1":{"init":"%s/init","initrd":"%s/initrd","kernel":"%s/kernel","kernelParams":[],"label":"testflake %s","system":"%s","toplevel":"%s"}}\n' \
  "$out" "$out" "$out" "$version" "$system" "$out" >"$out/boot.json"
printf '%s\n' "$agentConfig" >"$out/etc/nix-gitops/config.json"
/bin/ln -s "$systemConf" "$out/etc/systemd/system.conf"
/bin/ln -s "$fstab" "$out/etc/fstab"
printf '%s' "$healthScript" >"$out/etc/testflake/health"
/bin/chmod 0555 "$out/etc/testflake/health"
if [ -n "$systemdFiles" ]; then
  # The units as the system's NixOS modules make them (internal/nixcheck's
  # stand-in of nixpkgs' systemd-lib.nix): files, drop-ins and .wants links,
  # with @agent@ standing for this system's agent package.
  for f in $systemdFiles; do
    p=$out/etc/systemd/system/${f%%=*}
    case ${f%%=*} in */*) /bin/mkdir -p "${p%/*}" ;; esac
    /bin/sed -e "s|@agent@|$agent|g" "${f#*=}" >"$p"
  done
  for l in $systemdLinks; do
    p=$out/etc/systemd/system/${l%%=*}
    /bin/mkdir -p "${p%/*}"
    /bin/ln -sfn "${l#*=}" "$p"
  done
else
  # The agent's own units, exactly as `nix-gitops units` renders them for the
  # agent package in this system (what the image installs).
  "$agent/bin/nix-gitops" units --bin "$agent/bin/nix-gitops" --dir "$out/etc/systemd/system" >/dev/null
  /bin/ln -s ../nix-gitops-apply.service "$out/etc/systemd/system/multi-user.target.wants/nix-gitops-apply.service"
fi
for f in $etcFiles; do
  p=$out/etc/${f%%=*}
  case ${f%%=*} in */*) /bin/mkdir -p "${p%/*}" ;; esac
  /bin/sed -e "s|@agent@|$agent|g" "${f#*=}" >"$p"
done
# NixOS ships systemd's own targets in /etc/systemd/system too
# (upstreamSystemUnits in nixos/modules/system/boot/systemd.nix, which lists
# multi-user.target and timers.target; nixpkgs 0017a067). After the
# activation switch-to-configuration-ng starts every active target it finds
# there, and a start of an active target starts what it newly wants; a
# target that is not there is never started, so a unit newly wanted by it
# would wait for the next boot (pkgs/by-name/sw/switch-to-configuration-ng/
# src/src/main.rs at nixpkgs 173582451f, do_system_switch: the loop over
# the active units takes one only when /etc/systemd/system/<unit> exists,
# `current_base_unit_file.exists()`, and puts each such target in
# units_to_start). Our modules' units are wanted by these two (the agent's
# timer by timers.target). The switch also restarts
# sysinit-reactivation.target, a NixOS unit, every time.
for t in multi-user.target timers.target; do
  /bin/cp "/usr/lib/systemd/system/$t" "$out/etc/systemd/system/$t"
done
/bin/ln -s "$reactivationTarget" "$out/etc/systemd/system/sysinit-reactivation.target"
for u in $units; do
  /bin/ln -s "${u#*=}" "$out/etc/systemd/system/${u%%=*}"
done
for w in $wanted; do
  /bin/ln -s "../$w" "$out/etc/systemd/system/multi-user.target.wants/$w"
done
subst() {
  /bin/sed -e "s|@out@|$out|g" -e "s|@systemd@|$systemd|g" -e "s|@stc@|$stc|g" \
    -e "s|@activateSleep@|$activateSleep|g" -e "s|@activateExtra@|$activateExtra|g" "$1" >"$2"
  /bin/chmod 0555 "$2"
}
subst "$activateScript" "$out/activate"
subst "$initScript" "$out/init"
subst "$wrapperScript" "$out/bin/switch-to-configuration"
subst "$bootloaderScript" "$out/bin/install-bootloader"
subst "$preSwitchScript" "$out/bin/pre-switch-checks"
