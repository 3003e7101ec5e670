#!/usr/bin/env bash
# The demo: set up (idempotent), build, and extract the 53 window features from a small
# capture recorded on loopback, bundled in the repository.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
cargo build --release --quiet
capture=tests/fixtures/lo-sample.pcap
echo "== netanom extract --pcap $capture --window 1 (first columns of each window)" >&2
./target/release/netanom extract --pcap "$capture" --window 1 --output target/demo-features.csv
cut -d, -f1-12 target/demo-features.csv | head -n 12
echo "== all 53 features per window: target/demo-features.csv" >&2
