#!/usr/bin/env bash
# Record an ATTACK capture on loopback: the same normal background mix as
# scripts/record-normal.sh for the whole time, plus attacks from 127.0.0.66 at known
# times, and write the labels (start/end epoch of each attack) next to it.
#
# Usage: scripts/record-attack.sh [--scenario demo|soc] [--seconds S] [--flood-count N] [--out-dir DIR]
#   --scenario X      demo (default): data/demo-attack.pcap + data/demo-attack-labels.csv;
#                     soc: the SOC benchmark of issue 8, attack.pcap + attack-labels.csv in
#                     target/soc/ (scripts/record-soc.sh records it with its normal.pcap)
#   --seconds S       total length (default demo 180, at least 150; soc 600, at least 560)
#   --flood-count N   SYN packets of the hping3 flood (default 20000, at most 100000)
#   --out-dir DIR     where the capture and its labels go (default data/, soc: target/soc/)
#
# demo timeline (seconds after the capture starts; each attack also waits for a quiet gap
# of at least 25 s after the previous one ends):
#   ~30   nmap_syn_scan    nmap -sS -p 1-2000 127.0.0.1 (-T4, --max-rate 500)
#   ~70   hping3_syn_flood hping3 -S -p 80 -i u100 -c N 127.0.0.1
#   ~110  nmap_udp_scan    nmap -sU -p 1-1000 127.0.0.1 (-T4, --max-rate 250, --max-retries 1)
#   ~145  icmp_sweep       hping3 -1 (echo request) x3 to each of 127.0.0.0/28
# soc timeline (same rule):
#   ~30   nmap_fast_scan   nmap -sS -T4 --max-rate 500 -p 1-1000 127.0.0.1
#   ~70   nmap_slow_scan   nmap -sS -T2 -p 1-150 127.0.0.1 (~60 s; timeout 90)
#   ~170  hping3_syn_flood hping3 -S -p 80 -i u100 -c N 127.0.0.1
#   ~210  syn_flood_dips   three hping3 -S -p 80 -i u100 bursts of 2 s, 2 s apart
#   ~250  udp_flood        hping3 -2 -p 9999 -i u100 -c N 127.0.0.1
#   ~290  icmp_flood       hping3 -1 -i u100 -c N/2 127.0.0.1 (echo request flood)
#   ~330  c2_beacon        a TCP connection 127.0.0.66 -> 127.0.0.1:4444 (a listener started
#                          with the servers) every 5 s for 120 s, ~25 bytes each way
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

scenario=demo
total=
flood=20000
outdir=
args=("$@")
while (($#)); do
  case $1 in
    --scenario) scenario=${2:?--scenario needs a value}; shift 2 ;;
    --seconds) total=${2:?--seconds needs a value}; shift 2 ;;
    --flood-count) flood=${2:?--flood-count needs a value}; shift 2 ;;
    --out-dir) outdir=${2:?--out-dir needs a value}; shift 2 ;;
    -h | --help) sed -n '2,33p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) nt_die "unknown argument: $1 (see --help)" ;;
  esac
done
case $scenario in
  demo) min_total=150 total=${total:-180} outdir=${outdir:-$root/data} base=demo-attack ;;
  soc) min_total=560 total=${total:-600} outdir=${outdir:-$root/target/soc} base=attack ;;
  *) nt_die "--scenario must be demo or soc" ;;
esac
[[ $total =~ ^[0-9]+$ ]] && ((total >= min_total && total <= 1800)) || nt_die "--seconds must be $min_total..1800"
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
pcap=$outdir/$base.pcap
labels=$outdir/$base-labels.csv
tmp=$pcap.tmp
labels_tmp=$NT_WORKDIR/labels.csv
echo 'name,src_cidr,dst_cidr,start_epoch,end_epoch' >"$labels_tmp"

nt_log "tools: $(nmap --version | head -1); $(hping3 --version 2>&1 | head -1 | cut -c1-40); $(tcpdump --version 2>&1 | head -1)"
nt_prepare_workdir "$NT_WORKDIR"
nt_start_servers
if [[ $scenario == soc ]]; then
  # The C2 server of the beacon: answers each check-in with a few bytes.
  cat >"$NT_WORKDIR/c2_server.py" <<'EOF'
import socketserver, sys
class H(socketserver.StreamRequestHandler):
    timeout = 10
    def handle(self):
        self.rfile.readline(256)
        self.wfile.write(b"TASK none sleep=5\n")
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True; daemon_threads = True
S((sys.argv[1], int(sys.argv[2])), H).serve_forever()
EOF
  cat >"$NT_WORKDIR/c2_beacon.py" <<'EOF'
import socket, sys, time
src, n, period = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
t0 = time.time()
for i in range(n):
    try:
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(3)
        c.bind((src, 0))
        c.connect(("127.0.0.1", 4444))
        with c:
            c.sendall(f"BEACON id=ws17 seq={i}\n".encode())
            c.recv(256)
    except OSError as e:
        print("beacon", i, e, file=sys.stderr)
    if i + 1 < n:
        time.sleep(max(0.0, t0 + (i + 1) * period - time.time()))
EOF
  nt_spawn_server c2 "$NT_PY" "$NT_WORKDIR/c2_server.py" 127.0.0.1 4444
  nt_wait_port tcp 127.0.0.1 4444 || nt_die "the C2 listener did not come up"
fi
sleep 1

# Capture bounds: the floods plus 400 packets/s of the rest; the duration plus a margin.
nt_capture_start "$tmp" $((flood * 12 + total * 400)) $((total + 120))
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

# The soc scenario's flood with dips: three SYN bursts of 2 s, 2 s apart (one attack).
syn_flood_dips() {
  local k
  for k in 1 2 3; do
    timeout --signal=INT 2 hping3 -n -q -I lo -a "$ATTACKER" -S -p 80 -i u100 -c "$flood" 127.0.0.1 || true
    ((k < 3)) && sleep 2
  done
  return 0
}

NMAP=(nmap -n -Pn -e lo -S "$ATTACKER" --max-retries 1)
HPING=(hping3 -n -q -I lo -a "$ATTACKER")
if [[ $scenario == demo ]]; then
  at 30
  attack nmap_syn_scan 127.0.0.1/32 timeout 60 "${NMAP[@]}" -sS -T4 --max-rate 500 -p 1-2000 127.0.0.1
  at 70
  attack hping3_syn_flood 127.0.0.1/32 timeout 60 "${HPING[@]}" -S -p 80 -i u100 -c "$flood" 127.0.0.1
  at 110
  attack nmap_udp_scan 127.0.0.1/32 timeout 60 "${NMAP[@]}" -sU -T4 --max-rate 250 --host-timeout 45s -p 1-1000 127.0.0.1
  at 145
  attack icmp_sweep 127.0.0.0/28 icmp_sweep
else
  at 30
  attack nmap_fast_scan 127.0.0.1/32 timeout 60 "${NMAP[@]}" -sS -T4 --max-rate 500 -p 1-1000 127.0.0.1
  at 70
  attack nmap_slow_scan 127.0.0.1/32 timeout 90 "${NMAP[@]}" -sS -T2 -p 1-150 127.0.0.1
  at 170
  attack hping3_syn_flood 127.0.0.1/32 timeout 60 "${HPING[@]}" -S -p 80 -i u100 -c "$flood" 127.0.0.1
  at 210
  attack syn_flood_dips 127.0.0.1/32 syn_flood_dips
  at 250
  attack udp_flood 127.0.0.1/32 timeout 60 "${HPING[@]}" -2 -p 9999 -i u100 -c "$flood" 127.0.0.1
  at 290
  attack icmp_flood 127.0.0.1/32 timeout 60 "${HPING[@]}" -1 -i u100 -c $((flood / 2)) 127.0.0.1
  at 330
  attack c2_beacon 127.0.0.1/32 timeout 140 "$NT_PY" "$NT_WORKDIR/c2_beacon.py" "$ATTACKER" 24 5
fi
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
