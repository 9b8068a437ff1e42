#!/usr/bin/env bash
# Filtered search: a collection whose segment carries an IVF (`--index graph`: a graph) against a
# flat collection of the same rows (a flat scan over the allowed rows), filters passing 1%, 10% and 50% of the rows; recall@10
# against the exact answer over the allowed rows and queries per second, one thread, medians of
# alternating rounds. The machine's load is printed first: ratios hold on a busy machine, absolute
# numbers do not.
# Usage: bash bench/filtered.sh [DATA_DIR] (default ../shared/data/codesearch) [extra example args]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/codesearch}
shift || true
uptime
cargo build --release -p bitseek-store --example filtered_bench
TARGET=${CARGO_TARGET_DIR:-target}
RAYON_NUM_THREADS=1 "$TARGET/release/examples/filtered_bench" \
  --base "$DATA/dev-python.code.f16.npy" --base "$DATA/dev-rust.code.f16.npy" \
  --queries "$DATA/dev-python.query.f16.npy" "$@"
uptime
