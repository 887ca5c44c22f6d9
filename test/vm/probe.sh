#!/bin/bash
# The VM suite's probe (test only). It reaches the guest as a systemd
# credential, never through the image, and runs as homelab-vmtest-report.service
# once cloud-init is done. It runs the boot's steps (VMTEST_STEPS), prints what
# the host asserts on the second serial port (ttyS1) in sections "=== name",
# and powers the guest off. The host holds no SSH key: this report is the only
# way results leave the guest.
#
# Parameters (Environment= of the unit): VMTEST_ADMIN (the claim's admin
# user), VMTEST_STEPS (space-separated steps, below), VMTEST_WAIT_LIMIT
# (seconds per wait), VMTEST_DENY and VMTEST_ALLOW (host:port lists the guest
# must not / must reach), VMTEST_TEXTFILE (the agent's metrics textfile),
# VMTEST_GIT (host:port of the git server).
#
# Steps (NAME:ARG):
#   boot             wait until the boot-time start of nix-gitops-apply.service
#                    (and its retries) finished
#   timer            start nix-gitops-apply.timer (its drop-in fires it a second
#                    later) and wait for that run
#   advance:NAME     move the served branch to the commit the host prepared as
#                    NAME (the git server's test control)
#   daemon:OUTCOME   start nix-gitops.service unless it runs, and wait until
#                    the advanced commit's run ended with OUTCOME
#   wait:OUTCOME     wait until the advanced commit's run ended with OUTCOME
#   idle             wait until nix-gitops-apply.service is done (a start the
#                    timer made during a switch, say)
#   apply            `nix-gitops apply`, as an operator runs it by hand
#   settled          wait until the boot is over (is-system-running --wait);
#                    sections system-state, apply-unit, failed-units
#   resolve:NAME     section NAME/resolve: git.lab.home.arpa through the
#                    guest's resolver (getent), or why not
#   control:NAME     the host's test control NAME (the git server's), such as
#                    vault-up
#   rollback-by-hand what `nixos-rebuild switch --rollback` does: the profile
#                    back one generation, and its switch-to-configuration
#   stop:UNIT        once a switch is activating, `systemctl stop UNIT`
#   kill:UNIT        once a switch is activating, kill UNIT's processes (-9)
#   first-boot-facts the bootstrap's facts: user, keys, host name, network
#   try-switch-default  run the boot default's switch-to-configuration switch
#                    by hand, as nixos-rebuild switch would
#   reboot-scheduled whether a reboot is scheduled; then cancel it
#   snap:NAME        the agent's and the system's state, as sections NAME/...
set -u
out=/dev/ttyS1
stty -F "$out" raw -echo 2>/dev/null || true
exec >"$out" 2>&1
# ttyS1 is a terminal: keep colours out of what the host parses.
export NO_COLOR=1 SYSTEMD_COLORS=0 SYSTEMD_PAGER= TERM=dumb

sec() { echo "=== $1"; }
unit=nix-gitops-apply.service
daemon=nix-gitops.service
switchunit=nixos-rebuild-switch-to-configuration.service
show() { systemctl show -P "$1" "$2"; }
start=$SECONDS
want=

# The conditions are asked every second: each costs one or two process
# starts (ran() reads the journal only once no run is in progress), and the
# thing waited for is seen half a second sooner on average, in each of the
# suite's 25 or so waits.
wait_for() { # what, condition...
  local t0=$SECONDS
  while ! "${@:2}"; do
    if [ $((SECONDS - t0)) -ge "$VMTEST_WAIT_LIMIT" ]; then
      echo "timeout: $1 within ${VMTEST_WAIT_LIMIT}s"
      return 1
    fi
    sleep 1
  done
  echo "$1 after $((SECONDS - t0))s (at $((SECONDS - start))s)"
}
# Done means: the unit ran in this boot (a non-zero exit timestamp), is not
# running or waiting to restart now, and no start of it is queued.
unit_done() {
  [ "$(show ExecMainExitTimestampMonotonic $unit)" != 0 ] &&
    [ "$(show ActiveState $unit)" != activating ] &&
    ! systemctl list-jobs --no-legend | grep -q " $unit "
}
# A run of the advanced commit ended with outcome $1 (the agent's own journal
# line: a daemon's later no-op ticks overwrite state.json's last run), and
# nothing is in progress.
# The agent's runs in this boot: the units', and the ones by hand (step apply).
runs_log() {
  journalctl -b -u $unit -u $daemon -o cat
  journalctl -b -t nix-gitops-manual -o cat
}
# state.json first: one jq, while the journal is two journalctl over the
# whole boot's journal and a grep, and while a run is in progress (most of
# a wait) the journal need not be read at all.
ran() {
  jq -e '.inProgress == null' /var/lib/nix-gitops/state.json >/dev/null 2>&1 &&
    runs_log | grep -q "msg=\"run finished\" outcome=$1 commit=${want:0:12} "
}
# unit_props UNIT: the properties a snapshot shows, in the array p, from one
# systemctl call. Under TCG a snapshot took 9-22 s in boot 2 (about 50
# process starts, 0.2-0.4 s each), 26 of them systemctl calls for one
# property each. A property the unit lacks (a timer's NRestarts) is unset
# (so ${p[K]-}: the probe runs with set -u) and prints empty, as
# `systemctl show -P` printed it; ExecStart is each command's path,
# the last "path=" of its line up to a space or ";", one a line.
declare -A p
unit_props() {
  local k v e
  p=()
  while IFS= read -r k; do
    v=${k#*=} k=${k%%=*}
    if [ "$k" = ExecStart ]; then
      e=${v##*path=}
      [ "$e" != "$v" ] && p[ExecStart]+=${p[ExecStart]:+$'\n'}${e%%[ ;]*}
    else
      p[$k]=$v
    fi
  done < <(systemctl show -p ActiveState -p Result -p NRestarts -p ExecMainStatus -p ExecStart -p MainPID "$1")
}
activating() { [ -e /run/testflake/activating ]; }
switch_idle() { ! systemctl -q is-active $switchunit; }

step_boot() { wait_for "the boot-time start finished" unit_done; }
step_timer() {
  local first
  first=$(show ExecMainExitTimestampMonotonic $unit)
  systemctl restart nix-gitops-apply.timer
  timer_run_done() { [ "$(show ExecMainExitTimestampMonotonic $unit)" != "$first" ] && unit_done; }
  wait_for "the timer's run finished" timer_run_done
}
ask_host() { # path: GET it from the git server, print the last line
  exec 3<>"/dev/tcp/${VMTEST_GIT%:*}/${VMTEST_GIT##*:}"
  printf 'GET %s HTTP/1.0\r\nHost: git\r\n\r\n' "$1" >&3
  tail -n1 <&3 | tr -d '\r\n'
  exec 3<&-
}
step_advance() {
  want=$(ask_host "/vmtest/advance/$1")
  echo "advanced to $1: $want"
}
step_settled() {
  local st
  st=$(timeout "$VMTEST_WAIT_LIMIT" systemctl is-system-running --wait)
  sec system-state
  echo "$st"
  sec apply-unit
  systemctl show -p ActiveState -p Result -p ConditionResult -p ExecMainStartTimestampMonotonic $unit
  sec failed-units
  systemctl --failed --no-legend --plain
}
step_resolve() {
  sec "$1/resolve"
  getent ahostsv4 git.lab.home.arpa || echo "getent: exit $?"
}
step_control() { echo "control $1: $(ask_host "/vmtest/control/$1")"; }
step_daemon() {
  systemctl -q is-active $daemon || systemctl start $daemon
  wait_for "the daemon's run of $want ended $1" ran "$1"
}
step_wait() { wait_for "the run of $want ended $1" ran "$1"; }
step_idle() { wait_for "nix-gitops-apply.service done" unit_done; }
step_apply() {
  systemd-cat -t nix-gitops-manual nix-gitops apply
  echo "nix-gitops apply by hand: exit $?"
}
step_rollback-by-hand() {
  nix-env -p /nix/var/nix/profiles/system --rollback
  /nix/var/nix/profiles/system/bin/switch-to-configuration switch
  echo "rolled back by hand: exit $?"
}
step_stop() {
  wait_for "a switch activating" activating || return
  local t0=$SECONDS
  systemctl stop "$1"
  echo "systemctl stop $1 returned after $((SECONDS - t0))s; switch unit: $(show ActiveState $switchunit)"
}
step_kill() {
  wait_for "a switch activating" activating || return
  systemctl kill --signal=SIGKILL "$1"
  echo "killed $1; switch unit: $(show ActiveState $switchunit)"
  wait_for "the switch to finish on its own" switch_idle
}
step_try-switch-default() {
  # What `nixos-rebuild switch` would do with the boot default: the real
  # switch-to-configuration-ng, its pre-switch check included.
  "$(readlink -f /boot/homelab-standin/default)/bin/switch-to-configuration" switch
  echo "switch-to-configuration switch of the boot default: exit $?"
}
step_reboot-scheduled() {
  sec reboot-scheduled
  busctl get-property org.freedesktop.login1 /org/freedesktop/login1 org.freedesktop.login1.Manager ScheduledShutdown
  shutdown -c 2>/dev/null
}
step_snap() {
  local n=$1
  sec "$n/state"
  cat /var/lib/nix-gitops/state.json
  sec "$n/floor"
  cat /var/lib/nix-gitops/floor.json
  sec "$n/status"
  nix-gitops status --json
  sec "$n/metrics"
  cat "$VMTEST_TEXTFILE"
  sec "$n/links"
  for l in /run/current-system /run/booted-system /nix/var/nix/profiles/system /boot/homelab-standin/default; do
    echo "$l $(readlink -f $l)"
  done
  sec "$n/entries"
  cat /boot/homelab-standin/entries
  sec "$n/units"
  local u
  for u in $unit $daemon nix-gitops-apply.timer testflake-app.service nix-gitops-secrets.service; do
    unit_props "$u"
    echo "$u ActiveState=${p[ActiveState]-} Result=${p[Result]-} NRestarts=${p[NRestarts]-} ExecMainStatus=${p[ExecMainStatus]-}"
    echo "$u ExecStart=${p[ExecStart]-}"
    [ "$u" = $daemon ] && pid=${p[MainPID]-}
  done
  echo "$daemon exe=$([ "$pid" != 0 ] && readlink /proc/$pid/exe)"
  sec "$n/invocations"
  # One line per run of the apply unit in this boot.
  journalctl -b -u $unit -o export --output-fields=_SYSTEMD_INVOCATION_ID,INVOCATION_ID |
    sed -n 's/^\(_SYSTEMD_INVOCATION_ID\|INVOCATION_ID\)=//p' | sort -u
  sec "$n/runs"
  runs_log | grep 'msg="run finished"'
  sec "$n/apply-runs"
  # Runs of the agent in the one-shot unit in this boot (each ends with this
  # line; a start that systemd skipped logs none).
  journalctl -b -u $unit -o cat | grep 'msg="run finished"'
  sec "$n/switch-journal"
  # With monotonic times: where a switch's time goes.
  journalctl -b -u $switchunit -o short-monotonic --no-pager | tail -n 60
  sec "$n/agent-journal"
  journalctl -b -u $unit -u $daemon -o short-monotonic --no-pager | tail -n 80
  sec "$n/failed-units"
  systemctl --failed --no-legend --plain
  sec "$n/secret"
  # A test value, but still: only its digest leaves the guest.
  if [ -e /run/nix-gitops/secrets/app ]; then sha256sum </run/nix-gitops/secrets/app; fi
}

step_first-boot-facts() {
  # cloud-init's command line is Python that imports most of cloud-init
  # before it does anything, about as long as cloud-init-main.service's own
  # start at boot (30-40 s under TCG). The three calls here (status,
  # net-convert, schema) share nothing they write, so they start first and
  # run side by side on the guest's two vCPUs while the rest is read; their
  # output is printed where it always was, the mount's too.
  mkdir -p /run/vmtest/seed /run/vmtest/nc
  cloud-init status --format json >/run/vmtest/status.out 2>&1 &
  local seeded=
  if mount -o ro /dev/disk/by-label/cidata /run/vmtest/seed >/run/vmtest/mount.log 2>&1; then
    seeded=1
    {
      cloud-init devel net-convert --network-data /run/vmtest/seed/network-config --kind yaml \
        --distro debian --output-kind networkd --directory /run/vmtest/nc >/run/vmtest/nc.log 2>&1
      echo "net-convert exit=$?" >/run/vmtest/nc.exit
    } &
    {
      cloud-init schema --schema-type network-config --config-file /run/vmtest/seed/network-config >/run/vmtest/schema.log 2>&1
      echo "schema exit=$?" >/run/vmtest/schema.exit
    } &
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
  wait
  sec cloud-init
  cat /run/vmtest/status.out
  sec addresses
  ip -color=never -4 -o addr show scope global
  sec routes
  ip -color=never -4 route show
  # The network-config exactly as the seed carries it, through cloud-init's
  # own converter and schema check (the guest's cloud-init consumes it).
  sec net-convert
  cat /run/vmtest/mount.log
  if [ -n "$seeded" ]; then
    cat /run/vmtest/nc.exit /run/vmtest/schema.exit /run/vmtest/nc.log /run/vmtest/schema.log
    find /run/vmtest/nc -type f -name '*.network' -exec cat {} +
    umount /run/vmtest/seed
  else
    echo "cannot mount the seed"
  fi
}

# Each step's wall time goes to section step-times, which the host logs for
# every boot (a passing run keeps no report): where a boot's time goes.
# EPOCHREALTIME and printf -v start no process.
read -r up0 _ </proc/uptime
times=
i=0
for s in $VMTEST_STEPS; do
  name=${s%%:*} arg=
  [ "$name" != "$s" ] && arg=${s#*:}
  i=$((i + 1))
  sec "step $i $s"
  t0=${EPOCHREALTIME/[.,]/}
  "step_$name" $arg || echo "step $s failed"
  t1=${EPOCHREALTIME/[.,]/}
  d=$(((t1 - t0) / 100000))
  printf -v line '%3d %-34s %5d.%d s' "$i" "$s" $((d / 10)) $((d % 10))
  times+=$line$'\n'
done
read -r up1 _ </proc/uptime

sec step-times
echo "the probe ran from ${up0} s to ${up1} s of the guest's uptime"
printf '%s' "$times"
sec boot-timing
systemd-analyze time
sec reach
probe() { timeout 5 bash -c "exec 3<>/dev/tcp/${1%:*}/${1##*:}" 2>/dev/null && echo "open $1" || echo "closed $1"; }
for t in $VMTEST_ALLOW $VMTEST_DENY; do probe "$t"; done
sec end
systemctl poweroff --no-block
