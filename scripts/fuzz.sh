#!/usr/bin/env bash
# Runs every fuzz target in the module for a short time each ($1, e.g. 10s).
# A target is any `func FuzzXxx(f *testing.F)` in a _test.go file.
# New inputs are minimized for at most 5 s (the default, 60 s, can eat the whole run).
set -euo pipefail
fuzztime=${1:-10s}
cd "$(dirname "$0")/.."
found=0
while IFS=: read -r file _ line; do
  name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/' <<<"$line")
  pkg=./$(dirname "$file")
  found=$((found+1))
  echo "fuzz $pkg $name ($fuzztime)"
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s "$pkg"
done < <(git grep -n -E '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' -- '*_test.go' || true)
echo "$found fuzz target(s) run"
