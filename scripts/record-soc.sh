#!/usr/bin/env bash
# Record the SOC benchmark of issue 8 into target/soc/ (nothing goes into data/):
#   normal.pcap                    12 minutes of the record-normal.sh background (training)
#   attack.pcap, attack-labels.csv 10 minutes of the same background with seven attacks
#                                  from 127.0.0.66 (record-attack.sh --scenario soc: fast
#                                  and slow nmap SYN scans, a SYN flood, a SYN flood with
#                                  dips, a UDP flood, an ICMP echo flood, a C2 beacon)
# Each of the two recordings runs in its own private network namespace; ~23 minutes.
#
# Usage: scripts/record-soc.sh [--out-dir DIR] [--only normal|attack]
#   --out-dir DIR   default target/soc
#   --only X        record just one of the two
# Then: scripts/soc-bench.sh. Runs as root; needs what record-attack.sh needs.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
outdir=$root/target/soc
only=
while (($#)); do
  case $1 in
    --out-dir) outdir=${2:?--out-dir needs a value}; shift 2 ;;
    --only) only=${2:?--only needs a value}; shift 2 ;;
    -h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "record-soc: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $only in '' | normal | attack) ;; *) echo "record-soc: --only must be normal or attack" >&2; exit 2 ;; esac
[[ $outdir = /* ]] || outdir=$PWD/$outdir
mkdir -p "$outdir"
if [[ $only != attack ]]; then
  "$here/record-normal.sh" --minutes 12 --out "$outdir/normal.pcap"
fi
if [[ $only != normal ]]; then
  "$here/record-attack.sh" --scenario soc --seconds 600 --out-dir "$outdir"
fi
ls -l "$outdir" >&2
