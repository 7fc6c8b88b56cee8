#!/usr/bin/env bash
# Storage (S3) benchmark: 1 GiB in and out through dms's s3.Transfer and
# through bare minio-go against the same versitygw on loopback, in one run;
# peak extra RSS during each transfer; 10,000 × 4 KiB objects staged; the
# bytes re-sent after kill -9 in the middle of a 512 MiB upload.
# Usage: bench/run-storage.sh [runs]   (default 1; env MIB=1024 SMALL=10000 RESUME_MIB=512)
# The machine may be shared: each run compares dms with bare minio-go a few
# seconds apart, and the summary gives the spread of those ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
mib=${MIB:-1024}
small=${SMALL:-10000}
resume=${RESUME_MIB:-512}

# tmpfs when it holds the data several times over (the gateway's copy, the
# local file, the downloaded copy, multipart parts), else a temp dir.
need_kb=$(( mib * 1024 * 5 ))
if [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2{print $4}')" -gt "$need_kb" ] 2>/dev/null; then
  base=/dev/shm
else
  base=${TMPDIR:-/tmp}
fi
work=$(mktemp -d "$base/dms-s3bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/s3.test" ./internal/storage/s3/

echo "backend dir: $base; object ${mib} MiB; ${small} small objects; resume ${resume} MiB; $(nproc) cores"
for run in $(seq 1 "$runs"); do
  out=$(cd "$work" && DMS_S3_BENCH_DIR="$work" DMS_S3_BENCH_MIB="$mib" DMS_S3_BENCH_SMALL="$small" \
    ./s3.test -test.run '^$' -test.bench '^Benchmark(Upload|BareMinioUpload|Download|BareMinioDownload|DownloadSmall)$' \
    -test.benchtime 1x 2>&1) || { echo "$out"; exit 1; }
  kill_out=$(cd "$work" && TMPDIR="$work" DMS_S3_RESUME_MIB="$resume" ./s3.test -test.run '^TestResumeAfterKill$' -test.v -test.count=1 2>&1) ||
    { echo "$kill_out"; exit 1; }
  echo "$out" "$kill_out" | awk -v run="$run" '
    /^Benchmark/ {
      name=$1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
      for (i=2; i<=NF; i++) {
        if ($(i+1)=="MB/s") mbs[name]=$i
        if ($(i+1)=="ns/op") ns[name]=$i
        if ($(i+1)=="extra-RSS-MiB") rss[name]=$i
        if ($(i+1)=="cpu-s/op") cpu[name]=$i
      }
    }
    /resent_bytes=/ { for (i=1; i<=NF; i++) if ($i ~ /^resent_bytes=/) { split($i, a, "="); resent=a[2] } }
    END {
      printf "run %s\n", run
      printf "  %-22s %10s %10s %14s %12s\n", "transfer", "MB/s", "vs bare", "extra RSS MiB", "client CPU s"
      printf "  %-22s %10s %10.2f %14s %12s\n", "upload (dms)", mbs["Upload"], mbs["Upload"]/mbs["BareMinioUpload"], rss["Upload"], cpu["Upload"]
      printf "  %-22s %10s %10s %14s %12s\n", "upload (bare minio)", mbs["BareMinioUpload"], "1.00", rss["BareMinioUpload"], cpu["BareMinioUpload"]
      printf "  %-22s %10s %10.2f %14s %12s\n", "download (dms)", mbs["Download"], mbs["Download"]/mbs["BareMinioDownload"], rss["Download"], cpu["Download"]
      printf "  %-22s %10s %10s %14s %12s\n", "download (bare minio)", mbs["BareMinioDownload"], "1.00", rss["BareMinioDownload"], cpu["BareMinioDownload"]
      printf "  small objects staged: %.2f s\n", ns["DownloadSmall"]/1e9
      printf "  resume after kill -9: %s bytes re-sent\n", resent
      printf "RESULT %.3f %.3f %.2f %s %s %s\n", mbs["Upload"]/mbs["BareMinioUpload"], mbs["Download"]/mbs["BareMinioDownload"], ns["DownloadSmall"]/1e9, resent, rss["Upload"], rss["Download"] > "/dev/stderr"
    }' 2>>"$work/results"
  echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
done
# Spread over the runs: min / median / max.
echo "summary over $runs runs (min / median / max)"
col=2
for name in "upload ratio (dms/bare)" "download ratio (dms/bare)" "small objects staged (s)" \
  "re-sent bytes after kill -9" "upload extra RSS (MiB)" "download extra RSS (MiB)"; do
  mapfile -t v < <(awk -v c="$col" '{print $c}' "$work/results" | sort -g)
  n=${#v[@]}
  printf "  %-30s %s / %s / %s\n" "$name" "${v[0]}" "${v[$(( (n - 1) / 2 ))]}" "${v[$(( n - 1 ))]}"
  col=$(( col + 1 ))
done
