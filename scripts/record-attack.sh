#!/usr/bin/env bash
# Record the DEMO ATTACK capture on loopback: the same normal background mix as
# scripts/record-normal.sh for the whole time, plus attacks from 127.0.0.66 at known
# times, and write the labels (start/end epoch of each attack) next to it.
#
# Usage: scripts/record-attack.sh [--seconds S] [--flood-count N] [--out-dir DIR]
#   --seconds S       total length (default 180, at least 150)
#   --flood-count N   SYN packets of the hping3 flood (default 20000, at most 100000)
#   --out-dir DIR     where demo-attack.pcap and demo-attack-labels.csv go (default data/)
#
# Timeline (seconds after the capture starts; each attack also waits for a quiet gap
# of at least 25 s after the previous one ends):
#   ~30   nmap_syn_scan    nmap -sS -p 1-2000 127.0.0.1 (-T4, --max-rate 500)
#   ~70   hping3_syn_flood hping3 -S -p 80 -i u100 -c N 127.0.0.1
#   ~110  nmap_udp_scan    nmap -sU -p 1-1000 127.0.0.1 (-T4, --max-rate 250, --max-retries 1)
#   ~145  icmp_sweep       hping3 -1 (echo request) x3 to each of 127.0.0.0/28
# all spoofing the source 127.0.0.66 (nmap -S 127.0.0.66 -e lo -Pn -n, hping3 -a
# 127.0.0.66); 127.0.0.66 is used by nothing else. Labels, one row per direction:
#   name,src_cidr,dst_cidr,start_epoch,end_epoch
# Runs as root in a private network namespace, like record-normal.sh.
# Needs what record-normal.sh needs, plus nmap and hping3.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib-traffic.sh
source "$here/lib-traffic.sh"
NT_LOG_PREFIX=record-attack

total=180
flood=20000
outdir=$root/data
args=("$@")
while (($#)); do
  case $1 in
    --seconds) total=${2:?--seconds needs a value}; shift 2 ;;
    --flood-count) flood=${2:?--flood-count needs a value}; shift 2 ;;
    --out-dir) outdir=${2:?--out-dir needs a value}; shift 2 ;;
    -h | --help) sed -n '2,23p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) nt_die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ $total =~ ^[0-9]+$ ]] && ((total >= 150 && total <= 1800)) || nt_die "--seconds must be 150..1800"
[[ $flood =~ ^[0-9]+$ ]] && ((flood >= 1 && flood <= 100000)) || nt_die "--flood-count must be 1..100000"
[[ $outdir = /* ]] || outdir=$PWD/$outdir

nt_require tcpdump tshark capinfos curl python3 dig dnsmasq ping ip ss unshare timeout nmap hping3
nt_optional openssl || true
nt_optional sshd && nt_optional ssh || true
nt_enter_netns "${BASH_SOURCE[0]}" "${args[@]}"

ATTACKER=127.0.0.66
NT_WORKDIR=$(mktemp -d /tmp/netanom-rec.XXXXXX)
cleanup() {
  nt_stop_all
  [[ -n ${NT_TCPDUMP_PID:-} ]] && { kill -INT "$NT_TCPDUMP_PID" 2>/dev/null || true; wait "$NT_TCPDUMP_PID" 2>/dev/null || true; }
  rm -rf "$NT_WORKDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$outdir"
pcap=$outdir/demo-attack.pcap
labels=$outdir/demo-attack-labels.csv
tmp=$pcap.tmp
labels_tmp=$NT_WORKDIR/labels.csv
echo 'name,src_cidr,dst_cidr,start_epoch,end_epoch' >"$labels_tmp"

nt_log "tools: $(nmap --version | head -1); $(hping3 --version 2>&1 | head -1 | cut -c1-40); $(tcpdump --version 2>&1 | head -1)"
nt_prepare_workdir "$NT_WORKDIR"
nt_start_servers
sleep 1

# Capture bounds: the flood plus 400 packets/s of the rest; the duration plus a margin.
nt_capture_start "$tmp" $((flood * 4 + total * 400)) $((total + 120))
t0=$EPOCHSECONDS
nt_start_background $((t0 + total))

last_end=$t0
# at OFFSET: sleep until t0+OFFSET and at least 25 s after the previous attack ended.
at() {
  local when=$((t0 + $1)); ((when >= last_end + 25)) || when=$((last_end + 25))
  while ((EPOCHSECONDS < when)); do sleep 0.2; done
}
# attack NAME TARGET_CIDR CMD...: run CMD (bounded by timeout), label both directions.
attack() {
  local name=$1 target=$2; shift 2
  local start end
  nt_log "attack $name: $*"
  start=$EPOCHREALTIME
  "$@" >>"$NT_WORKDIR/attacks.log" 2>&1 || nt_log "warning: $name exited with status $?"
  end=$EPOCHREALTIME
  printf '%s,%s/32,%s,%s,%s\n' "$name" "$ATTACKER" "$target" "$start" "$end" >>"$labels_tmp"
  printf '%s,%s,%s/32,%s,%s\n' "$name" "$target" "$ATTACKER" "$start" "$end" >>"$labels_tmp"
  last_end=${end%.*}
  last_end=$((last_end + 1))
  nt_log "attack $name: $start .. $end ($(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.2f", b-a}') s)"
}
icmp_sweep() { # three echo requests to each of 127.0.0.0/28, staggered by 0.1 s
  local x pids=()
  for x in $(seq 0 15); do
    timeout 10 hping3 -n -q -I lo -1 -a "$ATTACKER" -c 3 -i u200000 "127.0.0.$x" >/dev/null 2>&1 &
    pids+=($!)
    sleep 0.1
  done
  for x in "${pids[@]}"; do wait "$x" || true; done
}

NMAP=(nmap -n -Pn -e lo -S "$ATTACKER" --max-retries 1)
at 30
attack nmap_syn_scan 127.0.0.1/32 timeout 60 "${NMAP[@]}" -sS -T4 --max-rate 500 -p 1-2000 127.0.0.1
at 70
attack hping3_syn_flood 127.0.0.1/32 timeout 60 hping3 -n -q -I lo -a "$ATTACKER" -S -p 80 -i u100 -c "$flood" 127.0.0.1
at 110
attack nmap_udp_scan 127.0.0.1/32 timeout 60 "${NMAP[@]}" -sU -T4 --max-rate 250 --host-timeout 45s -p 1-1000 127.0.0.1
at 145
attack icmp_sweep 127.0.0.0/28 icmp_sweep
((EPOCHSECONDS < t0 + total - 10)) || nt_log "warning: attacks ran late, less than 10 s of background after the last one"

nt_wait_workers
nt_capture_stop
nt_stop_all
mv -f "$tmp" "$pcap"
cp "$labels_tmp" "$labels"
nt_log "done: $pcap, $labels"
cat "$labels" >&2

# Self-check: every packet from or to the attacker lies inside a labelled span of a
# matching row; count the attack packets of each label row.
tshark -r "$pcap" -Y "ip.addr == $ATTACKER" -T fields -E occurrence=f -e frame.time_epoch -e ip.src -e ip.dst 2>/dev/null |
  "$NT_PY" -c '
import csv, ipaddress, sys
from decimal import Decimal
rows = list(csv.DictReader(open(sys.argv[1])))
for r in rows:
    r["s"], r["d"] = ipaddress.ip_network(r["src_cidr"]), ipaddress.ip_network(r["dst_cidr"])
    r["a"], r["b"], r["n"] = Decimal(r["start_epoch"]), Decimal(r["end_epoch"]), 0
bad = 0
for line in sys.stdin:
    t, s, d = line.split()[:3]
    t, s, d = Decimal(t), ipaddress.ip_address(s), ipaddress.ip_address(d)
    hit = [r for r in rows if s in r["s"] and d in r["d"] and r["a"] <= t <= r["b"]]
    if hit: hit[0]["n"] += 1
    else:
        bad += 1
        if bad <= 5: print(f"OUTSIDE the labels: {t} {s} -> {d}", file=sys.stderr)
for r in rows:
    name, src, dst, span, n = r["name"], r["src_cidr"], r["dst_cidr"], r["b"] - r["a"], r["n"]
    print(f"{name:18} {src:>15} -> {dst:<15} {span:8.3f} s {n:7d} packets", file=sys.stderr)
if bad:
    sys.exit(f"{bad} packets of the attacker fall outside the labelled spans")
print("all packets of 127.0.0.66 lie inside the labelled spans", file=sys.stderr)
' "$labels"
nt_report "$pcap" >&2
tshark -r "$pcap" -q -z conv,ip 2>/dev/null | sed -n '1,14p' >&2
