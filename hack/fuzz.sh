#!/usr/bin/env bash
# Runs every Fuzz target in the module for a fixed budget (default 20000
# executions each). Targets are discovered, so a new fuzz test needs no edit
# here.
#
# The budget is a count, not a duration: with a duration, Go's fuzzing
# coordinator can fail a target with a bare "context deadline exceeded" and
# no crasher when its workers are starved of CPU at the deadline
# (go.dev/issue/75804). make test fuzzes while the pinned builds run in the
# background, and a CI run failed exactly so on flakeref.FuzzParse (execs
# stuck at 0/sec for 8 s, nothing written to testdata/fuzz). A count has no
# deadline to race: load only makes it slower, and a real crasher still fails.
set -euo pipefail
budget=${1:-20000x}
case "$budget" in
  *x) ;;
  *) echo "fuzz: budget $budget is a duration: give an execution count such as 20000x (durations fail spuriously under load, go.dev/issue/75804)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
for pkg in $(go list ./...); do
  for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "fuzz: $pkg $f ($budget)"
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$budget" "$pkg"
  done
done
