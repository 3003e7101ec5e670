#!/usr/bin/env bash
# shellcheck disable=SC2016
# Times `netanom extract` against `tcpdump -r FILE -w /dev/null` (and optionally tshark) on
# the same synthetic capture, in one run, repetitions interleaved, and prints medians and
# the ratio netanom/tcpdump side by side. The goal (docs/performance.md): netanom within
# 1.5x of tcpdump. Machines are noisy: compare the ratios of one run, not absolute times.
#
# usage: scripts/bench-extract.sh [--packets N] [--reps R] [--seed S] [--snaplen BYTES]
#            [--tshark-packets M] [--data-dir DIR] [--compare BIN] [--no-build] [--no-pin]
#   --packets N         packets in the main capture (default 3000000)
#   --reps R            timed repetitions of each command (default 5)
#   --seed S            generator seed (default 1)
#   --snaplen BYTES     capture only the first BYTES of each frame (default: whole frames;
#                       e.g. 128 for a header-only capture, where I/O weighs less)
#   --tshark-packets M  size of the smaller capture used for the tshark comparison
#                       (default 100000; 0 skips tshark)
#   --data-dir DIR      where captures are generated and cached (default target/bench-data)
#   --compare BIN       also time another netanom binary (row compare_w1), e.g. a copy of
#                       target/release/netanom saved before a change, in the same rounds
#   --no-build          use the existing target/release binaries
#   --no-pin            do not pin the commands to one CPU with taskset
# The captures are made once by `examples/synth_pcap.rs` and reused while the file exists
# (delete it to regenerate). Exit status 0 whatever the ratio: this script measures, the
# reader judges (see docs/performance.md).
set -euo pipefail

PACKETS=3000000
REPS=5
SEED=1
TSHARK_PACKETS=100000
SNAPLEN=65535
DATA_DIR=""
COMPARE=""
BUILD=1
PIN=1

usage() { sed -n '3,24p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --packets) PACKETS="$2"; shift 2 ;;
        --reps) REPS="$2"; shift 2 ;;
        --seed) SEED="$2"; shift 2 ;;
        --snaplen) SNAPLEN="$2"; shift 2 ;;
        --tshark-packets) TSHARK_PACKETS="$2"; shift 2 ;;
        --data-dir) DATA_DIR="$2"; shift 2 ;;
        --compare) COMPARE="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --no-pin) PIN=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench-extract: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
for v in "$PACKETS" "$REPS" "$SEED" "$TSHARK_PACKETS" "$SNAPLEN"; do
    case "$v" in ''|*[!0-9]*) echo "bench-extract: $v is not a whole number" >&2; exit 2 ;; esac
done
if [ "$REPS" -lt 1 ] || [ "$PACKETS" -lt 1 ]; then
    echo "bench-extract: --packets and --reps must be >= 1" >&2
    exit 2
fi

[ -z "$COMPARE" ] || COMPARE="$(realpath "$COMPARE")" # before the cd below
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
DATA_DIR="${DATA_DIR:-$TARGET_DIR/bench-data}"
NETANOM="$TARGET_DIR/release/netanom"
SYNTH="$TARGET_DIR/release/examples/synth_pcap"

# --- tools: install only what is missing (Debian/Ubuntu, as root) --------------------------
install_pkg() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bench-extract: installing $1" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >/dev/null 2>&1; }
    else
        return 1
    fi
}
command -v tcpdump >/dev/null || install_pkg tcpdump \
    || { echo "bench-extract: tcpdump is needed (apt-get install tcpdump)" >&2; exit 1; }
if [ "$TSHARK_PACKETS" -gt 0 ] && ! command -v tshark >/dev/null; then
    install_pkg tshark || { echo "bench-extract: no tshark, skipping it" >&2; TSHARK_PACKETS=0; }
fi
TCPDUMP="$(command -v tcpdump)"
TSHARK="$(command -v tshark || true)"

PINNED=()
if [ "$PIN" = 1 ] && command -v taskset >/dev/null && taskset -c 0 true 2>/dev/null; then
    PINNED=(taskset -c 0)
fi

# --- build ----------------------------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
    echo "bench-extract: cargo build --release --bin netanom --example synth_pcap" >&2
    cargo build --release --bin netanom --example synth_pcap >&2
fi
if [ ! -x "$NETANOM" ] || [ ! -x "$SYNTH" ]; then
    echo "bench-extract: build $NETANOM and $SYNTH first" >&2
    exit 1
fi

# --- captures (cached) ----------------------------------------------------------------------
mkdir -p "$DATA_DIR"
capture() { # N -> path, generating it if needed
    local n="$1" f="$DATA_DIR/synth-$1-seed$SEED.pcap"
    [ "$SNAPLEN" = 65535 ] || f="$DATA_DIR/synth-$1-seed$SEED-snap$SNAPLEN.pcap"
    if [ ! -s "$f" ]; then
        "$SYNTH" --packets "$n" --seed "$SEED" --snaplen "$SNAPLEN" --out "$f.tmp" >&2
        mv "$f.tmp" "$f"
    fi
    echo "$f"
}
BIG="$(capture "$PACKETS")"
SMALL=""
[ "$TSHARK_PACKETS" -gt 0 ] && SMALL="$(capture "$TSHARK_PACKETS")"

# --- timing -----------------------------------------------------------------------------------
# One timed run: prints "wall user sys" in seconds. stdout/stderr of the command are discarded
# (each command line below redirects its own output).
timed() {
    local TIMEFORMAT='%3R %3U %3S' t
    t=$( { time "$@" >/dev/null 2>&1; } 2>&1 ) || { echo "bench-extract: failed: $*" >&2; exit 1; }
    echo "$t"
}

# Commands by name; each is run as: timed "${PINNED[@]}" env F=FILE bash -c "<cmd>", so the
# variables are expanded by that inner bash (single quotes on purpose: SC2016 off above).
declare -A CMD
CMD[tcpdump]='exec "$TCPDUMP" -r "$F" -w /dev/null'
CMD[netanom_w1]='exec "$NETANOM" extract --pcap "$F" --window 1 --output /dev/null'
CMD[netanom_w0.5]='exec "$NETANOM" extract --pcap "$F" --window 0.5 --output /dev/null'
CMD[netanom_w30]='exec "$NETANOM" extract --pcap "$F" --window 30 --output /dev/null'
CMD[compare_w1]='exec "$COMPARE" extract --pcap "$F" --window 1 --output /dev/null'
CMD[tshark]='exec "$TSHARK" -r "$F" -T fields -e frame.len'
# Start-up alone (no packets): netanom links libtorch, whose initialisers run on every start.
CMD[netanom_start]='exec "$NETANOM" --version'
CMD[tcpdump_start]='exec "$TCPDUMP" --version'
export TCPDUMP NETANOM TSHARK COMPARE

run_cmd() { # name file -> "wall user sys"
    timed "${PINNED[@]}" env F="$2" bash -c "${CMD[$1]}"
}

# Sanity: netanom reads every packet (its closing log line counts them).
check_count() { # file n
    local got
    got=$(NETANOM_LOG=info "$NETANOM" extract --pcap "$1" --window 1 --output /dev/null 2>&1 \
        | sed -n 's/.* packets=\([0-9]*\).*/\1/p' | tail -1)
    if [ -z "$got" ]; then
        echo "bench-extract: warning: could not read netanom's packet count" >&2
    elif [ "$got" != "$2" ]; then
        echo "bench-extract: netanom counted '${got:-?}' packets in $1, expected $2" >&2
        exit 1
    fi
}

declare -A WALL CPU
series() { # label file n names...
    local label="$1" file="$2" n="$3"; shift 3
    local names=("$@") name rep out w u s
    check_count "$file" "$n"
    cat "$file" >/dev/null # page cache: every command reads from memory
    for name in "${names[@]}"; do run_cmd "$name" "$file" >/dev/null; done # warm-up
    for name in "${names[@]}"; do WALL[$label/$name]=""; CPU[$label/$name]=""; done
    for ((rep = 1; rep <= REPS; rep++)); do
        for name in "${names[@]}"; do
            out=$(run_cmd "$name" "$file")
            read -r w u s <<<"$out"
            WALL[$label/$name]+="$w "
            CPU[$label/$name]+="$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.3f", u + s }') "
        done
        echo "bench-extract: $label round $rep/$REPS done" >&2
    done
}

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# Median over rounds of the per-round ratio a/b (paired: both ran in the same round).
paired_ratio() { paste -d' ' <(tr ' ' '\n' <<<"$1" | sed '/^$/d') <(tr ' ' '\n' <<<"$2" | sed '/^$/d') \
    | awk '{ if ($2 > 0) printf "%.3f\n", $1 / $2 }' | tr '\n' ' ' | median; }

table() { # label n reference names...
    local label="$1" n="$2" ref="$3"; shift 3
    local name w c
    printf '%-14s %10s %10s %12s %12s %14s %14s\n' command "wall_s" "cpu_s" "Mpkt/s_wall" "Mpkt/s_cpu" "wall/$ref" "cpu/$ref"
    for name in "$@"; do
        w=$(median <<<"${WALL[$label/$name]}")
        c=$(median <<<"${CPU[$label/$name]}")
        if [[ "$name" == *_start ]]; then # no packets: times only
            printf '%-14s %10.3f %10.3f %12s %12s %14s %14s\n' "$name" "$w" "$c" - - - -
            continue
        fi
        printf '%-14s %10.3f %10.3f %12.2f %12.2f %14s %14s\n' "$name" "$w" "$c" \
            "$(awk -v n="$n" -v t="$w" 'BEGIN { print (t > 0 ? n / t / 1e6 : 0) }')" \
            "$(awk -v n="$n" -v t="$c" 'BEGIN { print (t > 0 ? n / t / 1e6 : 0) }')" \
            "$(paired_ratio "${WALL[$label/$name]}" "${WALL[$label/$ref]}")" \
            "$(paired_ratio "${CPU[$label/$name]}" "${CPU[$label/$ref]}")"
    done
}

BIG_NAMES=(tcpdump netanom_w1 netanom_w0.5 netanom_w30)
if [ -n "$COMPARE" ]; then
    [ -x "$COMPARE" ] || { echo "bench-extract: --compare $COMPARE is not an executable" >&2; exit 2; }
    BIG_NAMES+=(compare_w1)
fi
BIG_NAMES+=(tcpdump_start netanom_start)
series big "$BIG" "$PACKETS" "${BIG_NAMES[@]}"
if [ -n "$SMALL" ]; then
    series small "$SMALL" "$TSHARK_PACKETS" tcpdump netanom_w1 tshark
fi

# --- report -----------------------------------------------------------------------------------
echo
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "pinned:  ${PINNED[*]:-no}; repetitions: $REPS, interleaved; medians; ratios are medians of per-round ratios"
echo "tools:   $("$TCPDUMP" --version 2>&1 | head -1); $("$NETANOM" --version 2>&1 | head -1)${SMALL:+; $("$TSHARK" --version 2>/dev/null | head -1)}"
echo
echo "capture: $BIG ($PACKETS packets, $(du -m "$BIG" | cut -f1) MiB, snaplen $SNAPLEN)"
table big "$PACKETS" tcpdump "${BIG_NAMES[@]}"
if [ -n "$SMALL" ]; then
    echo
    echo "capture: $SMALL ($TSHARK_PACKETS packets, $(du -m "$SMALL" | cut -f1) MiB)"
    table small "$TSHARK_PACKETS" tcpdump tcpdump netanom_w1 tshark
fi
echo
echo "goal: netanom_w1 wall/tcpdump <= 1.5 (docs/performance.md)"
