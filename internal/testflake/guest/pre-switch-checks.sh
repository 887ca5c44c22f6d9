#!/bin/sh
# testflake stand-in for system.preSwitchChecksScript (a fake), with the one
# check NixOS 26.05 installs: switch inhibitors (switchable-system.nix). For
# switch and test, a name present in both the running and the new system's
# switch-inhibitors whose value differs refuses the switch.
incoming=$1 action=$2
case "$action" in boot|dry-activate) exit 0 ;; esac
cur=/run/current-system/switch-inhibitors
new=$incoming/switch-inhibitors
[ -f "$cur" ] || cur=/dev/null
[ -f "$new" ] || new=/dev/null
diff=$(/usr/bin/jq -rn --slurpfile a "$cur" --slurpfile b "$new" \
  '($a[0] // {}) as $o | ($b[0] // {}) as $n | $o | to_entries[] | .key as $k | .value as $v
   | select(($n | has($k)) and $n[$k] != $v) | "\($k): \($v) -> \($n[$k])"')
if [ -n "$diff" ]; then
  echo "switch inhibitors changed; boot into this system instead:" >&2
  echo "$diff" >&2
  exit 1
fi
