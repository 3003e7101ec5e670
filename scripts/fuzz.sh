#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/fuzz_targets/) for a given time each: the parsers of
# hostile input (decode, capture files through libpcap and the pipeline, the feature CSV, the
# labels CSV, model.json). Needs the nightly toolchain and cargo-fuzz (installed if missing).
# The seed corpora in fuzz/corpus/ are read, never written: new inputs go to
# target/fuzz-corpus/<target>/, crashes to fuzz/artifacts/<target>/.
#
# usage: scripts/fuzz.sh [--seconds N] [TARGET...]     (default: 60 s each, every target)
# exit status: 0 when no target found a crash, 1 otherwise (the crash files are listed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=60
targets=()
while (($#)); do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done
((${#targets[@]})) || targets=(decode capture_file feature_csv label_csv model_json partial_window)

rustup toolchain list | grep -q '^nightly' || { echo "fuzz: needs the nightly toolchain (rustup toolchain install nightly)" >&2; exit 2; }
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# libtorch for model_json (which links the netanom crate), as for every build here.
export LIBTORCH="${LIBTORCH:-$(readlink -f .libtorch)}"

failed=0
for t in "${targets[@]}"; do
    work="target/fuzz-corpus/$t"
    mkdir -p "$work" "fuzz/artifacts/$t"
    echo "fuzz: $t for ${seconds} s" >&2
    rc=0
    (cd fuzz && cargo +nightly fuzz run -O "$t" "../$work" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1) >"target/fuzz-$t.log" 2>&1 || rc=$?
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY)' "target/fuzz-$t.log" >&2 || true
    if compgen -G "fuzz/artifacts/$t/crash-*" >/dev/null || compgen -G "fuzz/artifacts/$t/oom-*" >/dev/null \
        || compgen -G "fuzz/artifacts/$t/timeout-*" >/dev/null; then
        echo "fuzz: $t FOUND PROBLEMS (log: target/fuzz-$t.log):" >&2
        ls -1 fuzz/artifacts/"$t"/ >&2
        failed=1
    elif ((rc != 0)); then
        echo "fuzz: $t did not run (exit $rc); see target/fuzz-$t.log" >&2
        tail -5 "target/fuzz-$t.log" >&2
        failed=1
    else
        echo "fuzz: $t: no crash" >&2
    fi
done
exit "$failed"
