#!/usr/bin/env bash
# Capture workers (`netanom run --workers N`): per-packet CPU cost and the highest offered
# rate without drops, for 1 and 2 workers (or --workers "1 2 4"), in one run, side by side.
#
# usage: scripts/bench-workers.sh [--workers "1 2"] [--rates "25000 50000 100000 200000 400000"]
#            [--seconds S] [--no-build]
#   --workers LIST  worker counts to measure (default "1 2")
#   --rates LIST    offered rates in packets/s, ascending (default 25k to 400k)
#   --seconds S     length of each step (default 5)
#   --no-build      use the existing target/release binaries
#
# Needs root: two network namespaces joined by a veth pair (names unique to this run,
# deleted at exit, also on failure); trafgen (netsniff-ng) sends UDP of many flows (source
# port counting up) from one end, `netanom run` captures on the other with the shipped demo
# model and a BPF filter for that traffic only. Traffic never leaves the namespaces.
#
# Per step it prints the rate trafgen achieved, the packets netanom counted, libpcap's
# drops, and the daemon's CPU time (user + system, all threads, from /proc) per packet
# counted. A rate "holds" when every packet was counted and nothing was dropped. On a
# 2-core machine the generator takes one core, so 2 workers share the other with it: such a
# machine shows the cost of merging, not the gain of a second core (docs/performance.md).
# Exit status 0 whatever the figures: this script measures, the reader judges.
set -euo pipefail

WORKERS="1 2"
RATES="25000 50000 100000 200000 400000"
SECONDS_PER_STEP=5
BUILD=1
usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --workers) WORKERS="$2"; shift 2 ;;
        --rates) RATES="$2"; shift 2 ;;
        --seconds) SECONDS_PER_STEP="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench-workers: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
for v in $WORKERS $RATES "$SECONDS_PER_STEP"; do
    case "$v" in ''|*[!0-9]*) echo "bench-workers: $v is not a whole number" >&2; exit 2 ;; esac
done
[ "$(id -u)" = 0 ] || { echo "bench-workers: needs root (namespaces, capture)" >&2; exit 1; }
command -v trafgen >/dev/null || { echo "bench-workers: needs trafgen (apt-get install netsniff-ng)" >&2; exit 1; }
command -v curl >/dev/null || { echo "bench-workers: needs curl" >&2; exit 1; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
NETANOM="$TARGET_DIR/release/netanom"
if [ "$BUILD" = 1 ]; then
    cargo build --release --bin netanom --bin netanom-full >&2
fi
[ -x "$NETANOM" ] && [ -x "$TARGET_DIR/release/netanom-full" ] \
    || { echo "bench-workers: build the release binaries first (cargo build --release)" >&2; exit 1; }

ID=$$
NS_A="nbw-a$ID"; NS_B="nbw-b$ID"; IF_A="nbwa$ID"; IF_B="nbwb$ID"
TMP="$(mktemp -d)"
# The daemon keeps its adaptive threshold's state in its model directory: a copy, not the
# repository's model/default.
cp -r model/default "$TMP/model"
DAEMON=""
cleanup() {
    [ -z "$DAEMON" ] || kill "$DAEMON" 2>/dev/null || true
    ip netns del "$NS_A" 2>/dev/null || true
    ip netns del "$NS_B" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$NS_A"
ip netns add "$NS_B"
ip link add "$IF_A" netns "$NS_A" type veth peer name "$IF_B" netns "$NS_B"
for pair in "$NS_A $IF_A" "$NS_B $IF_B"; do
    set -- $pair
    ip -n "$1" link set "$2" up
    ip -n "$1" link set lo up
done

cat >"$TMP/udp.cfg" <<'EOF'
{
  eth(da=02:00:00:00:00:01, sa=02:00:00:00:00:02),
  ipv4(saddr=10.9.0.1, daddr=10.9.1.1, ttl=64),
  udp(sp=dinc(1024, 60000), dp=53),
  fill(0x41, 18)
}
EOF

PORT=9470
metric() { # NAME: the sum of a metric's samples in the daemon's exposition
    ip netns exec "$NS_A" curl -fsS "http://127.0.0.1:$PORT/metrics" 2>/dev/null \
        | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%.0f", s }'
}
cpu_ticks() { # utime + stime of the daemon, clock ticks
    awk '{ print $14 + $15 }' "/proc/$DAEMON/stat"
}
HZ="$(getconf CLK_TCK)"

printf '%-8s %-10s %-12s %-12s %-10s %-12s %-6s\n' workers offered achieved_pps counted drops cpu_ns/pkt holds
declare -A BEST COST
for W in $WORKERS; do
    NETANOM_HISTORY__ENABLED=false NETANOM_CAPTURE__BPF_FILTER="udp and net 10.9.0.0/16" \
        NETANOM_CAPTURE__BUFFER_SIZE_MB=64 \
        ip netns exec "$NS_A" "$NETANOM" run --interface "$IF_A" --model "$TMP/model" \
        --alert-log "$TMP/alerts-$W.jsonl" --metrics-listen "127.0.0.1:$PORT" --workers "$W" \
        2>"$TMP/daemon-$W.log" &
    DAEMON=$!
    for _ in $(seq 100); do
        [ -n "$(metric netanom_windows_total)" ] && [ "$(metric netanom_windows_total)" -ge 1 ] && break
        sleep 0.2
    done
    [ "$(metric netanom_windows_total)" -ge 1 ] || { cat "$TMP/daemon-$W.log" >&2; exit 1; }
    BEST[$W]=0
    for R in $RATES; do
        N=$((R * SECONDS_PER_STEP))
        p0="$(metric netanom_packets_total)"
        d0=$(( $(metric netanom_pcap_kernel_drops_total) + $(metric netanom_pcap_interface_drops_total) ))
        c0="$(cpu_ticks)"
        t0="$(cut -d" " -f1 /proc/uptime)" # not the wall clock: it may be stepped
        ip netns exec "$NS_B" trafgen --dev "$IF_B" --conf "$TMP/udp.cfg" -n "$N" -b "${R}pps" \
            -P 1 -C >/dev/null 2>&1
        t1="$(cut -d" " -f1 /proc/uptime)"
        sleep 1.5 # the daemon drains its ring and reads libpcap's counters (every second)
        p1="$(metric netanom_packets_total)"
        d1=$(( $(metric netanom_pcap_kernel_drops_total) + $(metric netanom_pcap_interface_drops_total) ))
        c1="$(cpu_ticks)"
        got=$((p1 - p0)); drops=$((d1 - d0))
        achieved="$(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')"
        cost="$(awk -v c=$((c1 - c0)) -v hz="$HZ" -v n="$got" 'BEGIN { if (n > 0) printf "%.0f", c / hz * 1e9 / n; else print "-" }')"
        holds=no
        if [ "$drops" -eq 0 ] && [ "$got" -ge "$N" ]; then holds=yes; BEST[$W]=$R; COST[$W]=$cost; fi
        printf '%-8s %-10s %-12s %-12s %-10s %-12s %-6s\n' "$W" "$R" "$achieved" "$got" "$drops" "$cost" "$holds"
    done
    kill -TERM "$DAEMON"
    wait "$DAEMON" || true
    DAEMON=""
done
echo
printf '%-8s %-26s %-22s\n' workers highest_rate_without_drops cpu_ns/pkt_at_that_rate
for W in $WORKERS; do
    printf '%-8s %-26s %-22s\n' "$W" "${BEST[$W]}" "${COST[$W]:--}"
done
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load: $(cut -d' ' -f1-3 /proc/loadavg)"
