#!/usr/bin/env bash
# Prints where a `go test -json` run's time went: every package by the
# seconds its test binary ran (slowest first), then every test of 5 s or
# more (gotestsum tool slowest). `make reports` writes it to
# build/reports/test-times.txt and prints the head of both lists, so that a
# CI log shows which packages hold the reports group's wall time.
#
#   scripts/test-times.sh build/reports/test.json [GOTESTSUM]
set -euo pipefail
json=${1:?usage: test-times.sh TEST.JSON [GOTESTSUM]}
gotestsum=${2:-gotestsum}
[ -s "$json" ] || { echo "test-times: $json is missing or empty" >&2; exit 1; }

echo "SECONDS  PACKAGE (test binary's run, slowest first)"
# A package's own pass/fail event has an Elapsed and no Test.
grep -E '"Action":"(pass|fail)"' "$json" | grep -v '"Test":' |
  sed -nE 's/.*"Package":"([^"]+)".*"Elapsed":([0-9.]+).*/\2 \1/p' |
  sort -rn | awk '{ printf "%7.1f  %s\n", $1, $2 }'
echo
echo "TESTS OF 5 s OR MORE"
"$gotestsum" tool slowest --jsonfile "$json" --threshold 5s
