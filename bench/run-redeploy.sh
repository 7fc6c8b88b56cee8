#!/usr/bin/env bash
# Runs the redeploy benchmark (e2e BenchmarkRedeploy: four real dms
# processes, a docker service on one of three providers, kill -9 of that
# provider, 20 trials per run) RUNS times and prints each run's numbers and
# their spread, beside the published anchors (docs/PERFORMANCE.md,
# "Redeploy on provider loss").
#
# Environment (all optional):
#   RUNS     how many runs                                  (default 3)
#   TRIALS   trials per run (DMS_REDEPLOY_TRIALS)           (default 20)
#   RAW_OUT  file to keep the raw benchmark output in
# Needs a Docker engine (the benchmark skips without one).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
TRIALS=${TRIALS:-20}
out=${RAW_OUT:-$(mktemp)}
[ -n "${RAW_OUT:-}" ] || trap 'rm -f "$out"' EXIT
: >"$out"

go test -c -o /tmp/dms-e2e-redeploy.test ./e2e
bin=$(mktemp -d)/dms
go build -o "$bin" ./cmd/dms
for i in $(seq 1 "$RUNS"); do
  echo "== run $i of $RUNS ($TRIALS trials)" >&2
  (cd e2e && DMS_BIN="$bin" DMS_REDEPLOY_TRIALS="$TRIALS" /tmp/dms-e2e-redeploy.test \
    -test.run '^$' -test.bench '^BenchmarkRedeploy$' -test.benchtime 1x -test.timeout 60m -test.v) \
    | tee -a "$out" >&2
done

# One row per run, then min–max of each metric over the runs.
awk '
  /^BenchmarkRedeploy.* lost-p50-ms/ {
    n++
    for (i = 3; i < NF; i += 2) { v[n, $(i + 1)] = $i; units[$(i + 1)] = 1 }
  }
  END {
    split("lost-p50-ms lost-p95-ms healthy-p50-ms healthy-p95-ms stale-stop-p95-ms overlap-trials", m, " ")
    printf "%-6s", "run"
    for (j = 1; j <= 6; j++) printf " %18s", m[j]
    print ""
    for (r = 1; r <= n; r++) {
      printf "%-6d", r
      for (j = 1; j <= 6; j++) printf " %18s", v[r, m[j]]
      print ""
    }
    printf "%-6s", "spread"
    for (j = 1; j <= 6; j++) {
      lo = ""; hi = ""
      for (r = 1; r <= n; r++) { x = v[r, m[j]] + 0; if (lo == "" || x < lo) lo = x; if (hi == "" || x > hi) hi = x }
      printf " %18s", lo "–" hi
    }
    print ""
    print ""
    print "target: healthy-p95-ms <= lost_after + 5 s = 8000; overlap-trials = 0"
    print "anchors: Nomad notices a dead client after ~20 s (10 s TTL + 10 s heartbeat_grace);"
    print "         Kubernetes moves pods after ~5 min 40 s (node-monitor-grace-period 40 s + 300 s toleration)"
  }
' "$out"
