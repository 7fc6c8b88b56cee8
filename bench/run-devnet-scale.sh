#!/usr/bin/env bash
# A hundred real nodes (issue 20; docs/PERFORMANCE.md, "Scale: a hundred
# real nodes"): for each size in NODES, `dms devnet up` on loopback, then
# measured through the nodes' CLI and API (bench/devnetscale, package
# internal/devnet/scalebench): the time until discovery connected every
# node to every other, gossip reach-all p50/p99 (a /public/hello broadcast
# until the last node's reply), a dry-run bid round across every provider
# (dms plan) p50/p99, the idle nodes' RSS and CPU, and deploy → running of
# examples/hello.yaml; then `dms devnet down`. Prints a Markdown table and
# the load average.
#
#   bench/run-devnet-scale.sh                  # NODES="10 30 100"
#   NODES="20" SAMPLES=5 bench/run-devnet-scale.sh
#   DISCOVERY=5s bench/run-devnet-scale.sh     # dial the pairs discovery has not connected after 5 s
#   BIN=/tmp/other-dms bench/run-devnet-scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-10 30 100}
SAMPLES=${SAMPLES:-10}
IDLE=${IDLE:-30s}
SETTLE=${SETTLE:-10s}
DISCOVERY=${DISCOVERY:-3m}
BIN=${BIN:-}
if [ -z "$BIN" ]; then
  make --no-print-directory build >/dev/null
  BIN=bin/dms
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
GOOS=wasip1 GOARCH=wasm go build -o "$work/hello.wasm" ./examples/hello
cp examples/hello.yaml "$work/hello.yaml"
go build -o "$work/devnetscale" ./bench/devnetscale
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
"$work/devnetscale" -bin "$BIN" -job "$work/hello.yaml" -nodes "$(echo "$NODES" | tr ' ' ',')" \
  -samples "$SAMPLES" -idle "$IDLE" -settle "$SETTLE" -discovery "$DISCOVERY" -dir "$work"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
