#!/usr/bin/env bash
# Measures metering accuracy (docs/PERFORMANCE.md, "Metering"): a CPU-bound
# busybox container (`sh -c 'while :; do :; done'`, one core) runs through
# the allocation Manager on the real Docker executor for DURATION; the CPU
# time dms meters (Manager.Usage, the figure its notes bill) is compared
# with the container cgroup's own counter (cpu.stat usage_usec, or v1
# cpuacct.usage) read at the same moments. The test fails above 2 % error.
# Needs a Docker daemon and /bin/busybox (Debian's busybox-static).
#
#   bench/run-metering.sh                  # 60 s, once
#   DURATION=10s RUNS=3 bench/run-metering.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-60s}
RUNS=${RUNS:-1}
go test -tags integration -c -o /tmp/dms-metering.test ./internal/allocation
trap 'rm -f /tmp/dms-metering.test' EXIT
for i in $(seq "$RUNS"); do
  out=$(/tmp/dms-metering.test -test.run '^TestMeteringAccuracy$' -test.v -test.count=1 -duration="$DURATION" 2>&1) || {
    echo "$out" >&2
    exit 1
  }
  echo "run $i: $(echo "$out" | grep -o 'METERING window.*| anchor[^|]*' | sed 's/METERING //')"
  echo "run $i: $(echo "$out" | grep -o 'METERING final.*' | sed 's/METERING //')"
done
