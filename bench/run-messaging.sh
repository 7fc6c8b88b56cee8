#!/usr/bin/env bash
# Runs the messaging anchors and our actor benchmarks in one run, on this
# machine, and prints them side by side (docs/PERFORMANCE.md, "Messaging
# anchors"):
#
#   - raw libp2p stream round trip, and our p2p link's round trip and
#     one-way throughput (internal/p2p, TCP and QUIC);
#   - Hollywood v1.0.5 remote over loopback (bench/hollywood, its own module);
#   - our actor runtime's benchmarks, listed in ACTOR_BENCH.
#
# Environment (all optional):
#   BENCHTIME   -benchtime of the Go benchmarks            (default 2s)
#   HW_N, HW_D  Hollywood one-way: most messages, most time (1000000, 10s)
#   HW_RTT_N    Hollywood round trips                       (20000)
#   ACTOR_BENCH space-separated PKG:REGEX pairs of our benchmarks
#               (default: the node's authenticated Invoke RTT and Send
#               throughput, "./internal/node:BenchmarkInvokeRTT|BenchmarkSendThroughput")
#   RAW_OUT     file to keep the raw benchmark output in
set -euo pipefail
cd "$(dirname "$0")/.."

BENCHTIME=${BENCHTIME:-2s}
HW_N=${HW_N:-1000000}
HW_D=${HW_D:-10s}
HW_RTT_N=${HW_RTT_N:-20000}
ACTOR_BENCH=${ACTOR_BENCH-./internal/node:BenchmarkInvokeRTT|BenchmarkSendThroughput}
out=${RAW_OUT:-$(mktemp)}
[ -n "${RAW_OUT:-}" ] || trap 'rm -f "$out"' EXIT
: >"$out"

echo "== p2p anchors (internal/p2p), -benchtime $BENCHTIME" >&2
go test -run '^$' -bench 'BenchmarkRawStreamRTT|BenchmarkLinkRTT|BenchmarkLinkThroughput' \
  -benchtime "$BENCHTIME" -count 1 ./internal/p2p/ | tee -a "$out" >&2

echo "== Hollywood v1.0.5 remote over loopback (bench/hollywood)" >&2
(cd bench/hollywood && go run . -n "$HW_N" -d "$HW_D" -rtt-n "$HW_RTT_N") | tee -a "$out" >&2

for pair in $ACTOR_BENCH; do
  pkg=${pair%%:*} re=${pair#*:}
  echo "== $re ($pkg)" >&2
  go test -run '^$' -bench "$re" -benchtime "$BENCHTIME" -count 1 "$pkg" | tee -a "$out" >&2
done

# One row per benchmark: msgs/s (or 1e9/(ns/op) for one-at-a-time round
# trips), p50 and p99 in µs. Then the ratios the targets are stated in.
awk '
  /^Benchmark/ {
    name = $1; sub(/-[0-9]+$/, "", name)
    nsop = ""; rate = ""; p50 = ""; p99 = ""
    for (i = 3; i < NF; i += 2) {
      v = $i; u = $(i + 1)
      if (u == "ns/op") nsop = v
      if (u == "msgs/s" || u == "msg/s") rate = v
      if (u == "p50-ns") p50 = v
      if (u == "p99-ns") p99 = v
      if (u == "p50-µs" || u == "p50-us") p50 = v * 1000
      if (u == "p99-µs" || u == "p99-us") p99 = v * 1000
    }
    if (rate == "" && nsop != "") rate = 1e9 / nsop
    order[++n] = name; R[name] = rate; P50[name] = p50; P99[name] = p99
  }
  function us(x) { return x == "" ? "-" : sprintf("%.1f", x / 1000) }
  function ratio(label, a, b) {
    if (a != "" && b != "" && b + 0 > 0) printf "%-70s %8.2f\n", label, a / b
  }
  END {
    printf "%-44s %14s %10s %10s\n", "benchmark", "msgs/s", "p50 µs", "p99 µs"
    for (i = 1; i <= n; i++) {
      k = order[i]
      printf "%-44s %14.0f %10s %10s\n", k, R[k], us(P50[k]), us(P99[k])
    }
    print ""
    ratio("link RTT p50 / raw stream RTT p50 (tcp)", P50["BenchmarkLinkRTT/tcp"], P50["BenchmarkRawStreamRTT/tcp"])
    ratio("link RTT p50 / raw stream RTT p50 (quic)", P50["BenchmarkLinkRTT/quic-v1"], P50["BenchmarkRawStreamRTT/quic-v1"])
    ratio("link one-way msgs/s / Hollywood Send msgs/s (tcp)", R["BenchmarkLinkThroughput/tcp"], R["BenchmarkHollywoodSend"])
    ratio("Hollywood RTT p50 / raw stream RTT p50 (tcp)", P50["BenchmarkHollywoodRTT"], P50["BenchmarkRawStreamRTT/tcp"])
    # The targets of DESIGN.md, for our own (non-anchor) benchmarks:
    # throughput >= 1/3 of Hollywood Send and >= 100k msg/s; round-trip p50
    # <= 5x the raw stream round trip.
    for (i = 1; i <= n; i++) {
      k = order[i]
      if (k ~ /^Benchmark(RawStream|Link|Hollywood)/) continue
      if (P50[k] != "") {
        ratio(k " p50 / raw stream RTT p50 (tcp; target <= 5)", P50[k], P50["BenchmarkRawStreamRTT/tcp"])
      } else {
        ratio(k " / Hollywood Send (target >= 0.33)", R[k], R["BenchmarkHollywoodSend"])
        printf "%-70s %8s\n", k " >= 100k msg/s", (R[k] >= 100000 ? "yes" : "NO")
      }
    }
  }
' "$out"
