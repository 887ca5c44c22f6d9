#!/usr/bin/env bash
# Builds every pinned test dependency that takes minutes cold, two at a time,
# at low priority: make test starts it in the background before the unit
# tests, so the builds overlap them instead of following them. Each build
# script is cached by content and holds a flock while it builds, so a later
# caller (make e2e calling hack/build-tools.sh, say) either returns at once
# or waits for the build in flight, and a build that failed here fails there
# again, with its own output.
#
#   hack/prebuild.sh    logs to stderr; exits non-zero if any build failed
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Each build's wall and CPU seconds go to the log (make test: bin/prebuild.log):
# a cold run is bound by these compiles, and they are what to cut.
#   run NICENESS SCRIPT [ARGS...]   (10 for the compiles: the unit tests come first)
run() {
  local n=$1; shift
  local TIMEFORMAT="prebuild: $* took %0R s, %0U s user and %0S s system CPU"
  time { nice -n "$n" "$here/$1" "${@:2}" >/dev/null || { echo "prebuild: $* failed" >&2; return 1; }; }
}
# Two compile lanes for two cores. Each lane is ordered by when make test
# needs it: the control plane first (e2e), then Vault (vault-e2e), then
# Prometheus, the kubelet and Argo Workflows (rollout-e2e; the kubelet after
# the control plane, whose apiserver build compiles most of its packages).
# The VM suite's base image (debootstrap, root only) has a lane of its own
# from the start: it waits on the Debian mirror and the disk far more than on
# a core, so behind the compiles it only lengthened the run. It runs ahead of
# the compiles (nice -5): debootstrap is thousands of short steps one after
# another, and at the compiles' niceness each waited behind them for a core.
# Cold, at nice 10, it took 54 minutes of wall time for 4 minutes of CPU
# (3231 s; 144 s user, 109 s system), and the VM suite, the longest, could
# only start after it.
( run 10 build-tools.sh; run 10 build-provider.sh; run 10 schemas.sh; run 10 build-rollout.sh kubelet; run 10 build-rollout.sh argo ) & a=$!
( run 10 build-flux.sh; run 10 build-vault.sh; run 10 build-rollout.sh prometheus ) & b=$!
c=
if [ "$(id -u)" = 0 ]; then (run -5 vm-image.sh --base-only) & c=$!; fi
rc=0
for lane in "$a" "$b" $c; do wait "$lane" || rc=1; done
exit "$rc"
