#!/bin/bash
# The VM suite's probe (test only). It reaches the guest as a systemd
# credential, never through the image, and runs as homelab-vmtest-report.service
# once cloud-init is done. It waits for nix-gitops-apply.service to finish,
# prints what the host asserts on the second serial port (ttyS1) in sections
# "=== name", and powers the guest off. The host holds no SSH key: this report
# is the only way results leave the guest.
#
# Parameters (Environment= of the unit): VMTEST_ADMIN (the claim's admin
# user), VMTEST_WAIT (service: wait for the boot-time start; timer: then
# start nix-gitops-apply.timer and wait for its run), VMTEST_WAIT_LIMIT
# (seconds), VMTEST_DENY and
# VMTEST_ALLOW (host:port lists the guest must not / must reach),
# VMTEST_TEXTFILE (the agent's metrics textfile).
set -u
out=/dev/ttyS1
stty -F "$out" raw -echo 2>/dev/null || true
exec >"$out" 2>&1
# ttyS1 is a terminal: keep colours out of what the host parses.
export NO_COLOR=1 SYSTEMD_COLORS=0 SYSTEMD_PAGER= TERM=dumb

sec() { echo "=== $1"; }
unit=nix-gitops-apply.service
show() { systemctl show -P "$1" "$2"; }

# Done means: the unit ran in this boot (a non-zero exit timestamp), is not
# running now, and no start of it is queued.
apply_done() {
  [ "$(show ExecMainExitTimestampMonotonic $unit)" != 0 ] &&
    [ "$(show ActiveState $unit)" != activating ] &&
    ! systemctl list-jobs --no-legend | grep -q " $unit "
}
start=$SECONDS
wait_for() { # what, condition
  while ! "$2"; do
    if [ $((SECONDS - start)) -ge "$VMTEST_WAIT_LIMIT" ]; then
      echo "timeout: $1 within ${VMTEST_WAIT_LIMIT}s"
      return 1
    fi
    sleep 2
  done
  echo "$1 after $((SECONDS - start))s"
}
sec wait
# Every boot starts the unit (WantedBy=multi-user.target; at first boot
# cloud-init's runcmd start merges with it).
wait_for "the boot-time start finished" apply_done
if [ "$VMTEST_WAIT" = timer ]; then
  # Enable the opt-in timer for this boot only (nothing is persisted), once
  # the boot-time start is done, so the two runs are told apart. The test's
  # drop-in makes it fire a second after it starts.
  first=$(show ExecMainExitTimestampMonotonic $unit)
  systemctl start nix-gitops-apply.timer
  timer_run_done() { [ "$(show ExecMainExitTimestampMonotonic $unit)" != "$first" ] && apply_done; }
  wait_for "the timer's run finished" timer_run_done
fi

sec hostname
hostname
sec fqdn
hostname --fqdn
sec flake-target
cat /etc/nix-flake-target
sec passwd
getent passwd "$VMTEST_ADMIN"
sec password-status
# Second field: L locked, P usable password, NP none. No hash is printed.
passwd -S "$VMTEST_ADMIN"
sec authorized-keys
home=$(getent passwd "$VMTEST_ADMIN" | cut -d: -f6)
cat "$home/.ssh/authorized_keys"
sec sudo
sudo -n -l -U "$VMTEST_ADMIN"
sec cloud-init
cloud-init status --format json
sec addresses
ip -color=never -4 -o addr show scope global
sec routes
ip -color=never -4 route show
sec failed-units
systemctl --failed --no-legend --plain

# The network-config exactly as the seed carries it, through cloud-init's
# own converter and schema check (the guest's cloud-init is what consumes it).
sec net-convert
mkdir -p /run/vmtest/seed /run/vmtest/nc
if mount -o ro /dev/disk/by-label/cidata /run/vmtest/seed; then
  cloud-init devel net-convert --network-data /run/vmtest/seed/network-config --kind yaml \
    --distro debian --output-kind networkd --directory /run/vmtest/nc >/run/vmtest/nc.log 2>&1
  echo "net-convert exit=$?"
  cloud-init schema --schema-type network-config --config-file /run/vmtest/seed/network-config >/run/vmtest/schema.log 2>&1
  echo "schema exit=$?"
  cat /run/vmtest/nc.log /run/vmtest/schema.log
  find /run/vmtest/nc -type f -name '*.network' -exec cat {} +
  umount /run/vmtest/seed
else
  echo "cannot mount the seed"
fi

sec apply-unit
systemctl show $unit -p ActiveState -p Result -p ExecMainStatus -p ExecMainExitTimestampMonotonic -p UnitFileState
sec apply-timer
systemctl show nix-gitops-apply.timer -p ActiveState -p LastTriggerUSecMonotonic
sec apply-invocations
# One line per run of the unit in this boot (a start skipped by a Condition
# has no invocation id).
journalctl -b -u $unit -o export --output-fields=_SYSTEMD_INVOCATION_ID,INVOCATION_ID |
  sed -n 's/^\(_SYSTEMD_INVOCATION_ID\|INVOCATION_ID\)=//p' | sort -u
sec apply-journal
journalctl -b -u $unit -o short-monotonic --no-pager
sec state
cat /var/lib/nix-gitops/state.json
sec status
nix-gitops status --json
sec metrics
cat "$VMTEST_TEXTFILE"
sec switch-calls
cat /var/lib/testflake/calls.log
sec profile
readlink -f /nix/var/nix/profiles/system

sec boot-timing
systemd-analyze time
systemd-analyze blame --no-pager | head -n 15

sec reach
probe() { timeout 5 bash -c "exec 3<>/dev/tcp/${1%:*}/${1##*:}" 2>/dev/null && echo "open $1" || echo "closed $1"; }
for t in $VMTEST_ALLOW $VMTEST_DENY; do probe "$t"; done
sec end
systemctl poweroff --no-block
