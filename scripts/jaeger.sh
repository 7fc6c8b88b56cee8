#!/usr/bin/env bash
# Installs the Jaeger all-in-one binary the telemetry tests export traces to:
# $(go env GOPATH)/bin/jaeger, built from the tools module tools/jaeger
# (github.com/jaegertracing/jaeger/cmd/jaeger v1.75.0, pinned in its go.mod;
# the main module does not depend on it).
#
# Idempotent: does nothing when the installed binary is already v1.75.0
# (read from its build information with `go version -m`).
#
# The build takes ~10 minutes on two busy cores, so .ci/run starts this script
# in the background early. While it builds, the marker file
# $(go env GOPATH)/bin/.jaeger-building holds this script's process ID; it is
# removed when the script ends, however it ends. The tests' Jaeger fixture
# waits while the marker exists and names a live process.
set -euo pipefail
cd "$(dirname "$0")/.."

version=v1.75.0
bindir=$(go env GOPATH)/bin
bin=$bindir/jaeger
marker=$bindir/.jaeger-building

installed() {
  go version -m "$bin" 2>/dev/null |
    grep -Eq "^[[:space:]]+(mod|dep)[[:space:]]+github.com/jaegertracing/jaeger[[:space:]]+$version([[:space:]]|$)"
}

if installed; then
  echo "jaeger.sh: $bin is $version already"
  exit 0
fi

mkdir -p "$bindir"
echo $$ >"$marker"
tmp=$bin.tmp.$$
trap 'rm -f "$marker" "$tmp"' EXIT

echo "jaeger.sh: building jaeger $version into $bin"
start=$(date +%s)
(cd tools/jaeger && go build -o "$tmp" github.com/jaegertracing/jaeger/cmd/jaeger)
mv -f "$tmp" "$bin"
installed || { echo "jaeger.sh: $bin does not report $version" >&2; exit 1; }
echo "jaeger.sh: built in $(( $(date +%s) - start ))s"
