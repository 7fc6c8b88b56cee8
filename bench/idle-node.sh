#!/usr/bin/env bash
# Measures an idle node (docs/PERFORMANCE.md, "Idle node"): `dms run` with a
# fresh home and the default configuration (TCP and QUIC on all interfaces,
# DHT on, mDNS off, no peers), SETTLE seconds after its API is up, then over
# WINDOW seconds: CPU (user + system ticks from /proc/<pid>/stat) and memory
# (/proc/<pid>/status) at the end.
#
#   bench/idle-node.sh                 # 5 s settle, 60 s window
#   WINDOW=2700 bench/idle-node.sh     # a 45-minute soak
#   BIN=/tmp/other-dms bench/idle-node.sh   # another build, for a comparison
#   SCRAPE=15 bench/idle-node.sh       # GET /metrics every 15 s, as a Prometheus would
#   DMS_TELEMETRY_METRICS=false bench/idle-node.sh   # metrics off
set -euo pipefail
cd "$(dirname "$0")/.."
SETTLE=${SETTLE:-5}
WINDOW=${WINDOW:-60}
BIN=${BIN:-}
SCRAPE=${SCRAPE:-}
if [ -z "$BIN" ]; then
  make --no-print-directory build >/dev/null
  BIN=bin/dms
fi
dir=$(mktemp -d)
pid=
scraper=
cleanup() {
  [ -n "$scraper" ] && kill "$scraper" 2>/dev/null && wait "$scraper" 2>/dev/null
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
export DMS_PASSPHRASE=idle-node
"$BIN" --home "$dir/home" init >/dev/null
"$BIN" --home "$dir/home" run --listen /ip4/0.0.0.0/tcp/0 --listen /ip4/0.0.0.0/udp/0/quic-v1 \
  --api-listen 127.0.0.1:0 >"$dir/log" 2>&1 &
pid=$!
for _ in $(seq 300); do
  [ -s "$dir/home/api.addr" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/log" >&2; exit 1; }
  sleep 0.1
done
[ -s "$dir/home/api.addr" ] || { echo "the node did not start" >&2; cat "$dir/log" >&2; exit 1; }
if [ -n "$SCRAPE" ]; then
  addr=$(cat "$dir/home/api.addr")
  ( while sleep "$SCRAPE"; do
      curl -sf -H "Authorization: Bearer $(cat "$dir/home/api.token")" "http://$addr/metrics" -o /dev/null || echo "scrape failed" >&2
    done ) &
  scraper=$!
fi
sleep "$SETTLE"
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
t0=$(ticks)
sleep "$WINDOW"
t1=$(ticks)
hz=$(getconf CLK_TCK)
awk -v d=$((t1 - t0)) -v hz="$hz" -v w="$WINDOW" 'BEGIN {printf "CPU          %.3f %% (%d ticks of 1/%d s in %d s)\n", 100 * d / hz / w, d, hz, w}'
awk '
  $1 == "VmRSS:"   {printf "RSS          %.1f MB\n", $2 / 1000}
  $1 == "RssAnon:" {printf "  anonymous  %.1f MB\n", $2 / 1000}
  $1 == "RssFile:" {printf "  file       %.1f MB\n", $2 / 1000}
  $1 == "VmHWM:"   {printf "peak RSS     %.1f MB\n", $2 / 1000}
  $1 == "Threads:" {printf "threads      %d\n", $2}
' "/proc/$pid/status"
