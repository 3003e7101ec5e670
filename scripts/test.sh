#!/usr/bin/env bash
# Set up (idempotent), then run the whole test suite. Live-capture tests need root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
cargo test "$@"
