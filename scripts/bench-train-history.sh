#!/usr/bin/env bash
# Times `netanom train --history` on a synthetic week of feature history (ω = 0.5 s, about
# 1.2 M windows, a daily cycle, a few alerted windows, drops and gaps), written by the
# recorder itself (examples/synth_history.rs). The goal (docs/history.md): at most 15 minutes
# on a 2-core machine with the default options. Prints the wall time, the windows per second
# and the peak memory.
#
# usage: scripts/bench-train-history.sh [--days N] [--data-dir DIR] [--no-build] [-- TRAIN-ARGS...]
#   --days N        days of history at ω = 0.5 s (default 7: 1.2 M windows)
#   --data-dir DIR  where the history is generated and kept (default target/bench-history);
#                   reused while DIR/days-N exists (delete it to regenerate)
#   --no-build      use the existing target/release binaries
#   -- TRAIN-ARGS   passed on to `netanom train` (e.g. --max-runs-per-epoch 0 for every run)
# Exit status 0 whatever the time: this script measures, the reader judges.
set -euo pipefail

DAYS=7
DATA_DIR=""
BUILD=1
EXTRA=()

usage() { sed -n '3,14p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --days) DAYS="$2"; shift 2 ;;
        --data-dir) DATA_DIR="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench-train-history: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}"
[ -n "$DATA_DIR" ] || DATA_DIR="$TARGET/bench-history"
if [ "$BUILD" = 1 ]; then
    cargo build --release --bins --example synth_history
fi
BIN="$TARGET/release"
HIST="$DATA_DIR/days-$DAYS"
if [ ! -d "$HIST" ]; then
    mkdir -p "$DATA_DIR"
    "$BIN/examples/synth_history" --out "$HIST.partial" --days "$DAYS"
    mv "$HIST.partial" "$HIST"
fi
"$BIN/netanom" history --dir "$HIST"
WINDOWS=$("$BIN/netanom" history --json --dir "$HIST" | sed -n 's/.*"windows":\([0-9]*\)}$/\1/p')
du -sh "$HIST"

MODEL="$DATA_DIR/model"
rm -rf "$MODEL"
LOG="$DATA_DIR/train.log"
echo "netanom train --history $HIST --out $MODEL ${EXTRA[*]:-}"
start=$(date +%s.%N)
/usr/bin/time -f "peak memory %M KB" "$BIN/netanom" train --history "$HIST" --out "$MODEL" "${EXTRA[@]}" \
    >"$LOG.out" 2>"$LOG"
end=$(date +%s.%N)
grep -E "^history |^training on|epoch 1/|epoch [0-9]+/[0-9]+: .*" "$LOG" | sed -n '1,3p;$p'
tail -n 1 "$LOG"
cat "$LOG.out"
awk -v s="$start" -v e="$end" -v w="$WINDOWS" 'BEGIN {
    t = e - s
    printf "train --history: %.1f s (%.1f min) for %d windows: %.0f windows/s\n", t, t / 60, w, w / t
}'
