#!/usr/bin/env bash
# Fails when a package that must stay well tested is under the minimum
# coverage. Reads the per-package lines of scripts/coverage-report.sh.
#
#   scripts/coverage-check.sh build/reports/coverage.txt     (COVERAGE_MIN=85)
set -euo pipefail
report=${1:?usage: coverage-check.sh COVERAGE.TXT}
min=${COVERAGE_MIN:-85}
module=github.com/dmsnet/dms
packages=(internal/cap internal/match internal/ensemble internal/actor internal/deployproto internal/orchestrator/placement)

[ -s "$report" ] || { echo "coverage-check: $report is missing or empty (run make test)" >&2; exit 1; }
fail=0
for p in "${packages[@]}"; do
  line=$(awk -v pkg="$module/$p" '$1 == pkg { print $3; exit }' "$report")
  if [ -z "$line" ]; then
    echo "coverage-check: $p: not in $report" >&2
    fail=1
    continue
  fi
  pct=${line%\%}
  if awk -v p="$pct" -v m="$min" 'BEGIN { exit !(p + 0 < m + 0) }'; then
    echo "coverage-check: $p: $pct% < $min%" >&2
    fail=1
  else
    echo "coverage-check: $p: $pct% (≥ $min%)"
  fi
done
exit $fail
