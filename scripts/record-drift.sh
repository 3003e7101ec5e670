#!/usr/bin/env bash
# Record the long-horizon benchmark of issue 15: normal traffic that DRIFTS over hours, with
# real servers and clients in a private network namespace (scripts/lib-traffic.sh): the
# record-normal.sh mix, load that rises and falls over a compressed "day" (NT_DRIFT_PERIOD,
# default 60 min: 20 % at night to 100 % at noon; three more clients only active at high
# load), clients that come and go (a new generation of client addresses every 10 min, ten
# "laptops" 127.0.0.50-59 at high load), and a periodic bulk job (127.0.0.40 pulls 120 MB from
# the file server 127.0.0.20:8000 at 4 MB/s every 15 min +-10 %).
#
# Usage:
#   scripts/record-drift.sh --all [--out-dir DIR] [--minutes M] [--attack-minutes A]
#       records the whole set at once, each part in its own namespace (default
#       target/drift, M = 125, A = 30, so about 2 h 10 min):
#         normal-a.pcap             M minutes, load phase 0 deg (starts at "midnight")
#         normal-b.pcap             M minutes, phase 135 deg: an independent realisation
#         attack.pcap, attack-labels.csv
#                                   A minutes of another realisation (phase 240 deg) with
#                                   labelled attacks from 127.0.66.1-12 (below)
#         bulk-<part>.csv           when each bulk job ran (benign, for the analysis)
#   scripts/record-drift.sh --minutes M --out FILE [--phase DEG] [--attacks | --long-attacks]
#       one recording; --attacks adds the attack timeline and writes FILE's labels next to
#       it (FILE without .pcap + -labels.csv); --long-attacks the long one (below)
#
# Attack timeline (seconds after the start; --attacks needs at least 26 minutes). Each
# attacker spoofs its own address inside 127.0.0.0/8, used by nothing else:
#   120  nmap_fast_scan   127.0.66.1   nmap -sS -T4 --max-rate 500 -p 1-1000 127.0.0.1
#   144  nmap_slow_scan   127.0.66.2   nmap -sS -T2 -p 1-150 127.0.0.1 (24 s after the fast one
#                                      started: two attacks, two incidents)
#   330  syn_flood        127.0.66.3   hping3 -S -p 80 -i u100 -c 20000
#   +20  udp_flood        127.0.66.4   hping3 -2 -p 9999 -i u100 -c 20000, 20 s after the SYN
#                                      flood ended (two hosts 20 s apart)
#   480  syn_flood_dips   127.0.66.5   three 2 s SYN bursts, 2 s apart (one attack)
#   600  icmp_flood       127.0.66.6   hping3 -1 -i u100 -c 10000
#   720  ddos_two_hosts   127.0.66.7+8 two SYN floods at once (one attack, two culprits)
#   900  nmap_udp_scan    127.0.66.9   nmap -sU -T4 --max-rate 250 -p 1-500 (ICMP unreachable
#                                      replies to the scanner)
#  1050  c2_beacon        127.0.66.10  a TCP check-in to 127.0.0.1:4444 every 5 s for 120 s
#  1300  slow_scan_alone  127.0.66.11  nmap -sS -T2 -p 1-150 127.0.0.1
#  1500  fast_scan_intranet 127.0.66.12 nmap -sS -T4 --max-rate 500 -p 1-1000 127.0.0.10
# Long attack timeline (--long-attacks, at least 32 minutes): attacks that last longer than
# half a short median baseline (--spot-median), to measure what the baseline absorbs:
#   300  long_slow_scan   127.0.66.21  nmap -sS -T2 -p 1-1000 127.0.0.1, bounded at 15 minutes
#                                      (recorded once: 350 probes in 137 s, then silent until
#                                      the bound; the label runs to the bound)
#  1200  long_syn_flood   127.0.66.22  hping3 -S -p 80 -i u5000 -c 120000 (200 SYN/s, 10 minutes)
# Labels, one row per direction: name,src_cidr,dst_cidr,start_epoch,end_epoch.
#
# Runs as root; needs what record-attack.sh needs. Traffic goes only to 127.0.0.0/8 and ::1
# inside the namespaces. Then: scripts/drift-bench.sh.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

all=0 outdir=$root/target/drift minutes= attack_minutes=30 out= phase=0 attacks=0
args=("$@")
while (($#)); do
  case $1 in
    --all) all=1; shift ;;
    --out-dir) outdir=${2:?--out-dir needs a value}; shift 2 ;;
    --minutes) minutes=${2:?--minutes needs a value}; shift 2 ;;
    --attack-minutes) attack_minutes=${2:?--attack-minutes needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    --phase) phase=${2:?--phase needs a value}; shift 2 ;;
    --attacks) attacks=1; shift ;;
    --long-attacks) attacks=2; shift ;;
    -h | --help) sed -n '2,44p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "record-drift: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ((all)); then
  minutes=${minutes:-125}
  [[ $outdir = /* ]] || outdir=$PWD/$outdir
  mkdir -p "$outdir"
  pids=()
  "$0" --minutes "$minutes" --phase 0 --out "$outdir/normal-a.pcap" >"$outdir/record-normal-a.log" 2>&1 & pids+=($!)
  "$0" --minutes "$minutes" --phase 135 --out "$outdir/normal-b.pcap" >"$outdir/record-normal-b.log" 2>&1 & pids+=($!)
  "$0" --minutes "$attack_minutes" --phase 240 --attacks --out "$outdir/attack.pcap" >"$outdir/record-attack.log" 2>&1 & pids+=($!)
  echo "record-drift: recording normal-a, normal-b ($minutes min) and attack ($attack_minutes min) into $outdir (logs record-*.log)" >&2
  rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  ls -l "$outdir" >&2
  exit $rc
fi

NT_DRIFT=1
# shellcheck source=scripts/lib-traffic.sh
source "$here/lib-traffic.sh"
NT_LOG_PREFIX=record-drift
NT_DRIFT_PHASE=$phase
[[ -n $out ]] || nt_die "--out FILE is needed (or --all)"
minutes=${minutes:-125}
[[ $minutes =~ ^[0-9]+$ ]] || nt_die "--minutes must be a whole number"
min_minutes=5
((attacks == 1)) && min_minutes=26
((attacks == 2)) && min_minutes=32
((minutes >= min_minutes && minutes <= 600)) || nt_die "--minutes must be $min_minutes..600"
[[ $phase =~ ^[0-9]+$ ]] || nt_die "--phase must be whole degrees"
[[ $out = /* ]] || out=$PWD/$out
seconds=$((minutes * 60))

nt_require tcpdump tshark capinfos curl python3 dig dnsmasq ping ip ss unshare timeout
((attacks)) && nt_require nmap hping3
nt_optional openssl || true
nt_optional sshd && nt_optional ssh || true
nt_enter_netns "${BASH_SOURCE[0]}" "${args[@]}"

NT_WORKDIR=$(mktemp -d /tmp/netanom-drift.XXXXXX)
cleanup() {
  nt_stop_all
  [[ -n ${NT_TCPDUMP_PID:-} ]] && { kill -INT "$NT_TCPDUMP_PID" 2>/dev/null || true; wait "$NT_TCPDUMP_PID" 2>/dev/null || true; }
  rm -rf "$NT_WORKDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$(dirname "$out")"
tmp=$out.tmp
base=${out%.pcap}
labels_tmp=$NT_WORKDIR/labels.csv
echo 'name,src_cidr,dst_cidr,start_epoch,end_epoch' >"$labels_tmp"
nt_prepare_workdir "$NT_WORKDIR"
nt_start_servers
if ((attacks)); then
  # The C2 server and beacon of the attack timeline (as record-attack.sh --scenario soc).
  cat >"$NT_WORKDIR/c2_server.py" <<'PYEOF'
import socketserver, sys
class H(socketserver.StreamRequestHandler):
    timeout = 10
    def handle(self):
        self.rfile.readline(256)
        self.wfile.write(b"TASK none sleep=5\n")
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True; daemon_threads = True
S((sys.argv[1], int(sys.argv[2])), H).serve_forever()
PYEOF
  cat >"$NT_WORKDIR/c2_beacon.py" <<'PYEOF'
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
PYEOF
  nt_spawn_server c2 "$NT_PY" "$NT_WORKDIR/c2_server.py" 127.0.0.1 4444
  nt_wait_port tcp 127.0.0.1 4444 || nt_die "the C2 listener did not come up"
fi
sleep 1

# Capture bounds: 400 packets/s of background plus the floods; the duration plus a margin.
nt_capture_start "$tmp" $((seconds * 400 + attacks * 400000)) $((seconds + 180))
t0=$EPOCHSECONDS
nt_start_drift_background $((t0 + seconds))
nt_log "recording ${seconds}s of drifting normal traffic$( ((attacks)) && echo ' with attacks')"

if ((attacks)); then
  # at OFFSET: sleep until t0 + OFFSET.
  at() { while ((EPOCHSECONDS < t0 + $1)); do sleep 0.2; done; }
  # label NAME SRC DST START END: both directions.
  label() {
    printf '%s,%s/32,%s,%s,%s\n' "$1" "$2" "$3" "$4" "$5" >>"$labels_tmp"
    printf '%s,%s,%s/32,%s,%s\n' "$1" "$3" "$2" "$4" "$5" >>"$labels_tmp"
  }
  # attack NAME SRC TARGET_CIDR CMD...: run CMD (bounded), label it; sets LAST_END.
  attack() {
    local name=$1 src=$2 target=$3 start end; shift 3
    nt_log "attack $name from $src: $*"
    start=$EPOCHREALTIME
    "$@" >>"$NT_WORKDIR/attacks.log" 2>&1 || nt_log "warning: $name exited with status $?"
    end=$EPOCHREALTIME
    label "$name" "$src" "$target" "$start" "$end"
    LAST_END=${end%.*}
    nt_log "attack $name: $start .. $end"
  }
  # attack_bg NAME SRC TARGET CMD...: as attack, in the background (overlapping attacks).
  attack_bg() { attack "$@" & NT_ATTACK_PIDS+=($!); }
  NT_ATTACK_PIDS=()
  syn_dips() {
    local k
    for k in 1 2 3; do
      timeout --signal=INT 2 hping3 -n -q -I lo -a 127.0.66.5 -S -p 80 -i u100 -c 20000 127.0.0.1 || true
      ((k < 3)) && sleep 2
    done
    return 0
  }
  nmap_from() { local src=$1; shift; timeout 120 nmap -n -Pn -e lo -S "$src" --max-retries 1 "$@"; }
  hping_from() { local src=$1; shift; timeout 60 hping3 -n -q -I lo -a "$src" "$@"; }

  nmap_long_from() { local src=$1; shift; timeout 900 nmap -n -Pn -e lo -S "$src" --max-retries 1 "$@"; }
  hping_long_from() { local src=$1; shift; timeout 700 hping3 -n -q -I lo -a "$src" "$@"; }
  if ((attacks == 2)); then
    at 300
    attack long_slow_scan 127.0.66.21 127.0.0.1/32 nmap_long_from 127.0.66.21 -sS -T2 -p 1-1000 127.0.0.1
    at 1200
    attack long_syn_flood 127.0.66.22 127.0.0.1/32 hping_long_from 127.0.66.22 -S -p 80 -i u5000 -c 120000 127.0.0.1
  else
  at 120
  attack_bg nmap_fast_scan 127.0.66.1 127.0.0.1/32 nmap_from 127.0.66.1 -sS -T4 --max-rate 500 -p 1-1000 127.0.0.1
  at 144
  attack nmap_slow_scan 127.0.66.2 127.0.0.1/32 nmap_from 127.0.66.2 -sS -T2 -p 1-150 127.0.0.1
  for p in "${NT_ATTACK_PIDS[@]}"; do wait "$p" || true; done
  NT_ATTACK_PIDS=()
  at 330
  attack syn_flood 127.0.66.3 127.0.0.1/32 hping_from 127.0.66.3 -S -p 80 -i u100 -c 20000 127.0.0.1
  at $((LAST_END - t0 + 20))
  attack udp_flood 127.0.66.4 127.0.0.1/32 hping_from 127.0.66.4 -2 -p 9999 -i u100 -c 20000 127.0.0.1
  at 480
  attack syn_flood_dips 127.0.66.5 127.0.0.1/32 syn_dips
  at 600
  attack icmp_flood 127.0.66.6 127.0.0.1/32 hping_from 127.0.66.6 -1 -i u100 -c 10000 127.0.0.1
  at 720
  attack_bg ddos_two_hosts 127.0.66.7 127.0.0.1/32 hping_from 127.0.66.7 -S -p 80 -i u200 -c 15000 127.0.0.1
  attack ddos_two_hosts 127.0.66.8 127.0.0.1/32 hping_from 127.0.66.8 -S -p 80 -i u200 -c 15000 127.0.0.1
  for p in "${NT_ATTACK_PIDS[@]}"; do wait "$p" || true; done
  NT_ATTACK_PIDS=()
  at 900
  attack nmap_udp_scan 127.0.66.9 127.0.0.1/32 nmap_from 127.0.66.9 -sU -T4 --max-rate 250 --host-timeout 60s -p 1-500 127.0.0.1
  at 1050
  attack c2_beacon 127.0.66.10 127.0.0.1/32 timeout 140 "$NT_PY" "$NT_WORKDIR/c2_beacon.py" 127.0.66.10 24 5
  at 1300
  attack slow_scan_alone 127.0.66.11 127.0.0.1/32 nmap_from 127.0.66.11 -sS -T2 -p 1-150 127.0.0.1
  at 1500
  attack fast_scan_intranet 127.0.66.12 127.0.0.10/32 nmap_from 127.0.66.12 -sS -T4 --max-rate 500 -p 1-1000 127.0.0.10
  fi
  ((EPOCHSECONDS < t0 + seconds - 30)) || nt_log "warning: attacks ran late, less than 30 s of background after the last one"
fi

nt_wait_workers
nt_capture_stop
cp "$NT_WORKDIR/bulk.log" "$(dirname "$out")/bulk-$(basename "$base").csv" 2>/dev/null || true
nt_stop_all
mv -f "$tmp" "$out"
if ((attacks)); then
  cp "$labels_tmp" "$base-labels.csv"
  nt_log "labels: $base-labels.csv"
  cat "$base-labels.csv" >&2
fi
nt_log "done: $out"
# Self-check: no attacker address in a normal recording; every attacker packet inside a label.
if ((!attacks)); then
  if [[ -n $(tshark -r "$out" -Y 'ip.src == 127.0.66.0/24 or ip.dst == 127.0.66.0/24 or ip.addr == 127.0.0.66' -T fields -e frame.number 2>/dev/null | head -1) ]]; then
    nt_die "the normal capture holds packets of an attacker address"
  fi
else
  tshark -r "$out" -Y 'ip.addr == 127.0.66.0/24' -T fields -E occurrence=f -e frame.time_epoch -e ip.src -e ip.dst 2>/dev/null |
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
    print(f"{name:20} {src:>16} -> {dst:<16} {span:8.3f} s {n:7d} packets", file=sys.stderr)
if bad:
    sys.exit(f"{bad} attacker packets fall outside the labelled spans")
print("all attacker packets lie inside the labelled spans", file=sys.stderr)
' "$base-labels.csv"
fi
nt_report "$out" >&2
