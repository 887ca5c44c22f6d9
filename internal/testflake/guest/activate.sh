#!/bin/sh
# testflake stand-in for NixOS's activation script (a fake; nixpkgs'
# setup-etc.pl and activation snippets cannot be built offline). What it
# models, as NixOS does it:
#   - /etc/static points to this system's etc tree, and every file of that
#     tree is linked from /etc through /etc/static; links into /etc/static
#     the tree no longer has are removed (setup-etc.pl);
#   - the system's own activation snippets run;
#   - /run/current-system points to this system, atomically.
set -e
out=@out@
/bin/ln -sfn "$out/etc" /etc/.static.tmp
/bin/mv -T /etc/.static.tmp /etc/static
cd "$out/etc"
/usr/bin/find . \( -type f -o -type l \) | while read -r f; do
  f=${f#./}
  [ "$(/usr/bin/readlink "/etc/$f")" = "/etc/static/$f" ] && continue
  case $f in */*) /bin/mkdir -p "/etc/${f%/*}" ;; esac
  /bin/rm -rf "/etc/$f"
  /bin/ln -s "/etc/static/$f" "/etc/$f"
done
/usr/bin/find /etc -xdev -xtype l -lname '/etc/static/*' -delete
if [ -d /run/systemd/system ]; then /bin/mkdir -p /run/testflake && : >/run/testflake/activating; fi
if [ @activateSleep@ != 0 ]; then /bin/sleep @activateSleep@; fi
extra=@activateExtra@
if [ -n "$extra" ]; then /bin/sh "$extra"; fi
/bin/ln -sfn "$out" /run/.current-system.tmp
/bin/mv -T /run/.current-system.tmp /run/current-system
/bin/rm -f /run/testflake/activating
