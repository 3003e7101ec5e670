#!/usr/bin/env bash
# Soak: the daemon captures live on `lo` while tcpreplay replays the shipped captures
# (data/normal-lo.pcap, data/demo-attack.pcap: loopback addresses only) onto `lo` in a loop
# at full speed, for a given time. Every interval it prints the daemon's resident memory,
# packets, windows, kernel drops and incidents; at the end the memory growth after warm-up.
# Needs root (capture on lo, tcpreplay). Traffic goes to `lo` only and stops with the script.
#
# usage: scripts/soak.sh [--minutes M] [--interval S] [--no-build]   (default 30 min, 30 s)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

minutes=30
interval=30
build=1
while (($#)); do
    case "$1" in
        --minutes) minutes="$2"; shift 2 ;;
        --interval) interval="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "soak: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "soak: needs root (capture on lo, tcpreplay)" >&2; exit 2; }
command -v tcpreplay >/dev/null || { apt-get update -qq && apt-get install -y -qq tcpreplay >/dev/null; }
((build)) && cargo build --release --quiet

work=$(mktemp -d)
# The daemon keeps its adaptive threshold's state in its model directory: a copy, not the
# repository's model/default.
cp -r model/default "$work/model"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
    [[ -n ${replay_pid:-} ]] && kill "$replay_pid" 2>/dev/null || true
    [[ -n ${daemon_pid:-} ]] && kill "$daemon_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

NETANOM_CAPTURE__BPF_FILTER="not tcp port $port" target/release/netanom run --interface lo \
    --model "$work/model" --alert-log "$work/alerts.jsonl" --metrics-listen "127.0.0.1:$port" \
    --history-dir "$work/history" --state-dir "$work/state" 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do
    python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/healthz')" 2>/dev/null && break
    sleep 0.1
done
tcpreplay --quiet --topspeed --loop=0 -i lo data/normal-lo.pcap data/demo-attack.pcap \
    >"$work/tcpreplay.log" 2>&1 &
replay_pid=$!

metric() { # name -> value from the exposition
    python3 - "$port" "$1" <<'PY'
import sys, urllib.request
port, name = sys.argv[1], sys.argv[2]
text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
print(sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(name + " ") or l.startswith(name + "{")))
PY
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$daemon_pid/status"; }

printf '%8s %10s %14s %10s %12s %10s\n' elapsed_s rss_kib packets windows kernel_drops incidents
start=$(date +%s)
end=$((start + minutes * 60))
first_rss=""
warm=$((start + 300 < end ? start + 300 : start + interval))
while (( $(date +%s) < end )); do
    sleep "$interval"
    kill -0 "$daemon_pid" 2>/dev/null || { echo "soak: the daemon died" >&2; tail -20 "$work/daemon.log" >&2; exit 1; }
    now=$(date +%s)
    rss=$(rss_kib)
    printf '%8d %10d %14.0f %10.0f %12.0f %10.0f\n' $((now - start)) "$rss" \
        "$(metric netanom_packets_total)" "$(metric netanom_windows_total)" \
        "$(metric netanom_pcap_kernel_drops_total)" "$(metric netanom_incidents_total)"
    if [[ -z $first_rss ]] && (( now >= warm )); then first_rss=$rss; fi
done
last_rss=$(rss_kib)
echo "soak: ${minutes} min; RSS after warm-up ${first_rss:-$last_rss} KiB, at the end ${last_rss} KiB (growth $(( last_rss - ${first_rss:-$last_rss} )) KiB)"
