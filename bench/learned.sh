#!/usr/bin/env bash
# The learned-codes table (crates/bitseek-learn/README.md): float32, sign, rabitq, residual2,
# learned 1-bit / 2-bit / 2-bit + RACS / ReSTE / BiPer / with BatchNorm / neighbors mode, KSH,
# compatible training, on the code-search dev sets split by package.
# Usage: bash bench/learned.sh [DATA_DIR] (default ../shared/data/codesearch)
# Environment: SEEDS (3), EPOCHS (20, early stopping ends most runs sooner), HIDDEN (128),
# COPIES (2, RACS), LANGS ("rust python"),
# ROWS (all: base,learned1,learned2,racs,reste,biper,batchnorm,neighbors,ksh,compat; also planes2,
# learned 2-bit with learned plane weights, not in the default set).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/codesearch}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release -p bitseek-learn --example codesearch
for lang in ${LANGS:-rust python}; do
  "$TARGET/release/examples/codesearch" "$DATA/dev-$lang.jsonl.gz" \
    --seeds "${SEEDS:-3}" --epochs "${EPOCHS:-20}" --hidden "${HIDDEN:-128}" --copies "${COPIES:-2}" \
    ${ROWS:+--rows "$ROWS"}
done
