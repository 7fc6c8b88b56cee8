#!/usr/bin/env bash
# Prints the coverage of a Go coverage profile: one line per package
# (statements covered / statements), the total, then `go tool cover -func`
# (per function).
#
#   scripts/coverage-report.sh build/reports/coverage.out > build/reports/coverage.txt
set -euo pipefail
profile=${1:?usage: coverage-report.sh COVERAGE.OUT}
[ -s "$profile" ] || { echo "coverage-report: $profile is missing or empty" >&2; exit 1; }

# A block may appear more than once (several test binaries covering one
# package): it counts once, covered if any run covered it.
awk '
  NR == 1 && /^mode:/ { next }
  {
    block = $1; stmts = $2; count = $3
    if (!(block in n)) { n[block] = stmts; order[++blocks] = block }
    if (count > 0) hit[block] = 1
  }
  END {
    for (i = 1; i <= blocks; i++) {
      b = order[i]
      file = substr(b, 1, index(b, ":") - 1)
      pkg = file; sub(/\/[^\/]*$/, "", pkg)
      total[pkg] += n[b]; all += n[b]
      if (b in hit) { covered[pkg] += n[b]; allCovered += n[b] }
    }
    printf "%-60s %10s %9s\n", "PACKAGE", "STATEMENTS", "COVERAGE"
    cmd = "sort"
    for (p in total) {
      pct = total[p] ? 100 * covered[p] / total[p] : 0
      printf "%-60s %10d %8.1f%%\n", p, total[p], pct | cmd
    }
    close(cmd)
    printf "%-60s %10d %8.1f%%\n", "TOTAL", all, all ? 100 * allCovered / all : 0
  }
' "$profile"
echo
go tool cover -func="$profile"
