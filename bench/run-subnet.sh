#!/usr/bin/env bash
# Subnet benchmark (issue 16): one TCP flow (iperf3) and RTT (ping) between
# two network namespaces joined by a veth pair, through
#   veth      the plain veth pair (the line),
#   dms-tcp   the dms overlay (bench/subnetpeer: router + TUN), libp2p over TCP,
#   dms-quic  the same, libp2p over QUIC,
#   dms-dgram the same over TCP, packets as UDP datagrams (subnetpeer -dgram),
#   wg        wireguard-go in userspace over the same veth (the fair peer),
# each clean and with random loss on the veth (an iptables statistic match
# in both namespaces: no netem in this kernel), in one run, repeated.
# Usage: bench/run-subnet.sh [runs]   (default 3; env SECS=10 PINGS=200 LOSS=0.01,
#        PATHS="veth dms-dgram wg" to measure some of the paths only,
#        PROFILE=dir for a CPU profile of each subnetpeer, dir/{a,b}-N.pprof,
#        LINE=1gbit to shape the veth to that rate in both directions with tbf,
#        a line of realistic rate; unset: the veth unshaped,
#        BASE=binary adds the path dms-base: dms-dgram with that build of
#        bench/subnetpeer, e.g. of an earlier commit, for a before/after in one run;
#        DGRAMFLAGS="-busypoll 500us" extra subnetpeer flags of the dms-dgram path
#        only: with BASE a build of the same commit, an A/B of a flag in one run)
#        bench/run-subnet.sh block    (the datagram path blocked mid-flow, below)
# Needs root. The machine may be shared: the table gives median (min–max)
# over the runs and the load average.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
secs=${SECS:-10}
pings=${PINGS:-200}
loss=${LOSS:-0.01}
paths=${PATHS:-veth dms-tcp dms-quic dms-dgram wg}
if [ -n "${BASE:-}" ] && [[ " $paths " != *" dms-base "* ]]; then
  paths="${paths/dms-dgram/dms-base dms-dgram}"
fi
for p in $paths; do
  case $p in veth|dms-tcp|dms-quic|dms-dgram|wg) ;; dms-base) [ -n "${BASE:-}" ] || { echo "run-subnet.sh: dms-base needs BASE=binary" >&2; exit 2; } ;; *) echo "run-subnet.sh: unknown path $p in PATHS" >&2; exit 2 ;; esac
done
has() { [[ " $paths " == *" $1 "* ]]; }

[ "$(id -u)" = 0 ] || { echo "run-subnet.sh: needs root (network namespaces)" >&2; exit 1; }
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v ping >/dev/null || need+=(iputils-ping)
command -v iptables >/dev/null || need+=(iptables)
if has wg; then command -v wg >/dev/null || need+=(wireguard-tools); fi
command -v ethtool >/dev/null || need+=(ethtool)
command -v tc >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
wggo=$(go env GOPATH)/bin/wireguard
if has wg && [ ! -x "$wggo" ]; then go install golang.zx2c4.com/wireguard@v0.0.0-20260522210424-ecfc5a8d5446; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/dms-subnetbench.XXXXXX")
nsA=dmsb-$$-a
nsB=dmsb-$$-b
pids=()
dms_pids=()
wg_pids=()
cleanup() {
  for p in "${pids[@]}" "${dms_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}" "${dms_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del "$nsA" 2>/dev/null || true
  ip netns del "$nsB" 2>/dev/null || true
  rm -rf "$work" "/etc/netns/$nsA"
  rmdir /etc/netns 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
inA() { ip netns exec "$nsA" "$@"; }
inB() { ip netns exec "$nsB" "$@"; }

go build -o "$work/subnetpeer" ./bench/subnetpeer

# The line: vA 10.99.0.1 in A, vB 10.99.0.2 in B.
ip netns add "$nsA"
ip netns add "$nsB"
# ip netns exec mounts this over /etc/resolv.conf: A asks the gateway.
mkdir -p "/etc/netns/$nsA"
echo "nameserver 10.77.0.1" >"/etc/netns/$nsA/resolv.conf"
ip link add vA netns "$nsA" type veth peer name vB netns "$nsB"
inA ip addr add 10.99.0.1/24 dev vA
inB ip addr add 10.99.0.2/24 dev vB
for ns in "$nsA" "$nsB"; do
  ip -n "$ns" link set lo up
done
# Segmentation offloads off: every packet on the line is one of at most
# 1500 bytes, as on a real link, and the loss match drops 1 % of those
# (with offloads it would drop 1 % of 64 KiB aggregates).
inA ethtool -K vA tso off gso off gro off
inB ethtool -K vB tso off gso off gro off
inA ip link set vA up
inB ip link set vB up
# LINE: a token bucket on each end (tbf: no netem in this kernel).
if [ -n "${LINE:-}" ]; then
  inA tc qdisc add dev vA root tbf rate "$LINE" burst 128kb latency 5ms
  inB tc qdisc add dev vB root tbf rate "$LINE" burst 128kb latency 5ms
fi

# Background processes are started with ip netns exec itself (which execs
# them), never through inA/inB (a subshell), so that $! is their pid.
# One iperf3 server in B for every path.
ip netns exec "$nsB" iperf3 -s >/dev/null 2>&1 &
pids+=($!)

# wireguard-go in each namespace: 10.88.0.1 in A, 10.88.0.2 in B. Its
# control sockets live in /var/run/wireguard, shared by the namespaces:
# the two interfaces need names of their own.
wgA=dw$$a
wgB=dw$$b
wg_up() {
  local keyA keyB
  keyA=$(wg genkey)
  keyB=$(wg genkey)
  (umask 077; echo "$keyA" >"$work/wgA.key"; echo "$keyB" >"$work/wgB.key")
  ip netns exec "$nsA" env WG_PROCESS_FOREGROUND=1 "$wggo" "$wgA" >"$work/wgA.log" 2>&1 &
  pids+=($!)
  wg_pids+=($!)
  ip netns exec "$nsB" env WG_PROCESS_FOREGROUND=1 "$wggo" "$wgB" >"$work/wgB.log" 2>&1 &
  pids+=($!)
  wg_pids+=($!)
  wait_for "wireguard-go" 10 bash -c "ip -n $nsA link show $wgA && ip -n $nsB link show $wgB"
  inA wg set "$wgA" private-key "$work/wgA.key" listen-port 51820 \
    peer "$(echo "$keyB" | wg pubkey)" allowed-ips 10.88.0.2/32 endpoint 10.99.0.2:51820
  inB wg set "$wgB" private-key "$work/wgB.key" listen-port 51820 \
    peer "$(echo "$keyA" | wg pubkey)" allowed-ips 10.88.0.1/32 endpoint 10.99.0.1:51820
  inA ip addr add 10.88.0.1/24 dev "$wgA"
  inB ip addr add 10.88.0.2/24 dev "$wgB"
  inA ip link set "$wgA" mtu 1420 up
  inB ip link set "$wgB" mtu 1420 up
  wait_for "the wireguard tunnel" 20 ip netns exec "$nsA" ping -c1 -W1 10.88.0.2
}

# The dms overlay: subnetpeer in each namespace (dms0 10.77.0.2 in A,
# 10.77.0.3 in B); $1 is an extra flag (-quic, -dgram).
nup=0
dms_up() {
  local profA=() profB=()
  nup=$((nup + 1))
  if [ -n "${PROFILE:-}" ]; then
    mkdir -p "$PROFILE"
    profA=(-cpuprofile "$PROFILE/a-$nup.pprof")
    profB=(-cpuprofile "$PROFILE/b-$nup.pprof")
  fi
  local bin=$work/subnetpeer
  if [ "${1:-}" = base ]; then
    bin=$BASE
    shift
  fi
  ip netns exec "$nsA" "$bin" -self a -local 10.99.0.1 -remote 10.99.0.2 "${profA[@]}" "$@" 2>>"$work/peerA.log" &
  dms_pids+=($!)
  ip netns exec "$nsB" "$bin" -self b -local 10.99.0.2 -remote 10.99.0.1 "${profB[@]}" "$@" 2>>"$work/peerB.log" &
  dms_pids+=($!)
  wait_for "the dms overlay" 30 ip netns exec "$nsA" ping -c1 -W1 10.77.0.3
}
dms_down() {
  kill -TERM "${dms_pids[@]}" 2>/dev/null || true
  wait "${dms_pids[@]}" 2>/dev/null || true
  dms_pids=()
  # the peers' counters (forwarded, of which datagrams; drops)
  grep -h 'msg=down' "$work/peerA.log" "$work/peerB.log" | sed 's/^.*msg=down /    peer counters: /' || true
  : >"$work/peerA.log"
  : >"$work/peerB.log"
}

# wait_for what seconds cmd...: polls cmd until it succeeds.
wait_for() {
  local what=$1 secs=$2
  shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "run-subnet.sh: $what not up after ${secs}s" >&2
      tail -n 20 "$work"/*.log >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
}

set_loss() { # on|off: drop $loss of what arrives on each end of the veth
  local op=-D
  [ "$1" = on ] && op=-I
  inA iptables "$op" INPUT -i vA -m statistic --mode random --probability "$loss" -j DROP
  inB iptables "$op" INPUT -i vB -m statistic --mode random --probability "$loss" -j DROP
}

# cpu_ticks pid...: the CPU time (user and system, clock ticks) the
# processes have used.
cpu_ticks() {
  local t=0 p v
  for p in "$@"; do
    v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)
    t=$((t + v))
  done
  echo "$t"
}

# measure run path loss dst: iperf3 goodput (Mbit/s, receiver side), the
# tunnel processes' CPU seconds per GB received over the flow (both ends;
# 0 for the veth), then ping RTT p50 and p99 (ms), appended to results.
measure() {
  local run=$1 path=$2 lossp=$3 dst=$4 mbps rtt tun=() t0 t1 cpu
  case $path in
    dms-*) tun=("${dms_pids[@]}") ;;
    wg) tun=("${wg_pids[@]}") ;;
  esac
  t0=$(cpu_ticks "${tun[@]}")
  mbps=$(inA iperf3 -c "$dst" -t "$secs" -f m --connect-timeout 5000 |
    awk '/receiver/ { for (i = 2; i <= NF; i++) if ($i == "Mbits/sec") print $(i-1) }')
  t1=$(cpu_ticks "${tun[@]}")
  cpu=$(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v m="${mbps:-0}" -v s="$secs" \
    'BEGIN { gb = m * s / 8000; printf "%.2f", (gb > 0 ? d / hz / gb : 0) }')
  rtt=$( { inA ping -c "$pings" -i 0.01 -W 1 "$dst" || true; } |
    awk -F'time=' '/time=/ { split($2, a, " "); print a[1] }' | sort -g |
    awk '{ v[NR] = $1 } END { p50 = int(NR * 0.50 + 0.999); p99 = int(NR * 0.99 + 0.999); printf "%s %s", v[p50], v[p99] }')
  echo "$run $path $lossp ${mbps:-0} $rtt $cpu" >>"$work/results"
  printf "  %-9s loss %-5s %8s Mbit/s  RTT p50/p99 %s ms  tunnel CPU %s s/GB\n" "$path" "$lossp" "${mbps:-0}" "${rtt// / / }" "$cpu"
}

# measure_both run path dst: clean, then with loss.
measure_both() {
  measure "$1" "$2" 0 "$3"
  set_loss on
  measure "$1" "$2" "$loss" "$3"
  set_loss off
}

# bench/run-subnet.sh block: a firewall that drops the datagram path's UDP
# (port 4002) in B for 8 s in the middle of a 20 s flow over dms-dgram;
# the flow goes on over the stream, then back on datagrams.
if [ "$runs" = block ]; then
  dms_up -dgram
  ( sleep 5; inB iptables -I INPUT -p udp --dport 4002 -j DROP; echo "  [5 s] UDP to B's port 4002 dropped" >&2
    sleep 8; inB iptables -D INPUT -p udp --dport 4002 -j DROP; echo "  [13 s] UDP open again" >&2 ) &
  fw=$!
  inA iperf3 -c 10.77.0.3 -t 20 -i 1 -f m --connect-timeout 5000 | grep -E 'sec .*Mbits/sec' || true
  wait "$fw" || true
  dms_down
  exit 0
fi

if has wg; then wg_up; fi
# The overlay's names: b.internal from A through dms0 (package subnet/dns).
dms_up
echo "b.internal from A: $(inA getent ahostsv4 b.internal | awk 'NR==1 { print $1 }')"
dms_down
echo "two namespaces on a veth pair (offloads off); ${secs}s iperf3, ${pings} pings at 10 ms; loss $loss on each end; $(nproc) cores"
for run in $(seq 1 "$runs"); do
  echo "run $run (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  if has veth; then measure_both "$run" veth 10.99.0.2; fi
  if has dms-tcp; then
    dms_up
    measure_both "$run" dms-tcp 10.77.0.3
    dms_down
  fi
  if has dms-quic; then
    dms_up -quic
    measure_both "$run" dms-quic 10.77.0.3
    dms_down
  fi
  if has dms-base; then
    dms_up base -dgram
    measure_both "$run" dms-base 10.77.0.3
    dms_down
  fi
  if has dms-dgram; then
    dms_up -dgram ${DGRAMFLAGS:-}
    measure_both "$run" dms-dgram 10.77.0.3
    dms_down
  fi
  if has wg; then measure_both "$run" wg 10.88.0.2; fi
done

# The table: median (min–max) over the runs; "vs veth" is the goodput
# against the line's at the same loss, "+RTT" the added median RTT p50.
echo
echo "| path | loss | iperf3 Mbit/s median (min–max) | vs veth | vs wg | RTT p50 ms | +RTT p50 ms | RTT p99 ms | tunnel CPU s/GB |"
echo "|---|---|---|---|---|---|---|---|---|"
awk -v runs="$runs" -v want="$paths" '
  function sorted(s, a,    n, i, j, t) { # numeric insertion sort (mawk has no asort)
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j > 0 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n
  }
  function median(s,    a, n) { n = sorted(s, a); return a[int((n + 1) / 2)] }
  function lo(s,    a) { sorted(s, a); return a[1] }
  function hi(s,    a, n) { n = sorted(s, a); return a[n] }
  { k = $2 SUBSEP $3; mb[k] = mb[k] " " $4; p50[k] = p50[k] " " $5; p99[k] = p99[k] " " $6; cpu[k] = cpu[k] " " $7
    if (!seen[$3]++) losses[++nl] = $3 }
  END {
    np = split(want, paths, " ")
    for (l = 1; l <= nl; l++) for (p = 1; p <= np; p++) {
      k = paths[p] SUBSEP losses[l]; b = "veth" SUBSEP losses[l]; w = "wg" SUBSEP losses[l]
      printf "| %s | %s%% | %.0f (%.0f–%.0f) | %.0f %% | %.2f× | %.3f | %+.3f | %.3f | %.2f |\n", paths[p], losses[l] * 100,
        median(mb[k]), lo(mb[k]), hi(mb[k]), (median(mb[b]) > 0 ? 100 * median(mb[k]) / median(mb[b]) : 0),
        (median(mb[w]) > 0 ? median(mb[k]) / median(mb[w]) : 0),
        median(p50[k]), median(p50[k]) - median(p50[b]), median(p99[k]), median(cpu[k])
    }
  }' "$work/results"
# The same run's ratios (the machine's load changes between runs).
echo
echo "per run, Mbit/s of each path against the veth and wireguard-go of the same run:"
awk -v want="$paths" '{ mb[$1, $2, $3] = $4; if (!seen[$1]++) rs[++nr] = $1; if (!sl[$3]++) ls[++nl] = $3 }
  END {
    np = 0
    n = split(want, all, " ")
    for (i = 1; i <= n; i++) if (all[i] ~ /^dms-/) paths[++np] = all[i]
    for (r = 1; r <= nr; r++) for (l = 1; l <= nl; l++) {
      line = sprintf("  run %s loss %s:", rs[r], ls[l])
      for (p = 1; p <= np; p++) {
        v = mb[rs[r], paths[p], ls[l]]; e = mb[rs[r], "veth", ls[l]]; w = mb[rs[r], "wg", ls[l]]
        line = line sprintf("  %s %.0f%% of veth, %.2f× wg", paths[p], e > 0 ? 100 * v / e : 0, w > 0 ? v / w : 0)
      }
      print line
    }
  }' "$work/results"
