#!/usr/bin/env bash
# Label-free learned 1-bit codes against RaBitQ at equal bytes (64 B/vector) on packages the
# encoder never saw (crates/bitseek-learn/README.md, "Without labels").
# Usage: bash bench/labelfree.sh [DATA_DIR] (default ../shared/data/codesearch)
# Environment: SEEDS ("0 1 2"), LANGS ("rust python"),
# ROWS (rabitq,start,distill,distill-scales,distill-mimic,infonce; also rabitq-distill and
# rabitq-itq: RaBitQ with a rotation learned without labels), EPOCHS (8), ARGS (more arguments
# to the example, e.g. "--itq-iters 20").
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/codesearch}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release -p bitseek-learn --example labelfree
for lang in ${LANGS:-rust python}; do
  for seed in ${SEEDS:-0 1 2}; do
    echo "## $lang, split seed $seed"
    "$TARGET/release/examples/labelfree" "$DATA/dev-$lang.jsonl.gz" --seed "$seed" --epochs "${EPOCHS:-8}" \
      --rows "${ROWS:-rabitq,start,distill,distill-scales,distill-mimic,infonce}" ${ARGS:-}
  done
done
