#!/usr/bin/env bash
# Ablations of the tier-1 code-search head (issue 16), as RACS reports them: plain InfoNCE over
# in-batch negatives against each RACS operation alone and all of them together, and BM25-mined
# hard negatives on and off (with plain training and with the augmentation that validates best),
# several seeds each. Everything trains on the shipped head's set (capped train split, 8,926 pairs)
# and chooses its epoch on the capped validation packages; the table reports validation MRR per
# language (what a choice may look at) and the held-out test packages' MRR / R@1 / R@10 (float
# cosine over the whole test split, semantic only), mean ± sd over seeds.
#
#   python scripts/mine_pairs.py --packages scripts/mine_pairs.txt --dev ../shared/data/codesearch --out $W/data
#   W=$W bash scripts/train_code_head.sh /tmp/unused.safetensors   # embeds the capped sets
#   for l in python rust; do cargo run --release -p bitseek-codesearch --example embed_pairs -- $W/data/$l-test.jsonl; done
#   W=$W bash bench/head_ablation.sh
#
# Environment: SEEDS ("0 1 2"), COPIES (RACS copies per pair, 2 as `--augment racs`), ROWS (the
# row names below, default all; minilm is the untrained head, i.e. MiniLM alone; best+bm25 is the
# augmentation with the best mean validation MRR, with mined negatives), MINED_K (BM25 negatives
# mined per pair, 4), MINED_PER_PAIR (drawn per pair and step, 1), THREADS (1).
# Results: $W/ablation/runs.jsonl (one JSON line per run; rows already there are not run again)
# and the markdown table on stdout (`bench/head_ablation_table.py`).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${W:?set W to the work folder holding data/ (mined pairs and their vectors)}"
PY=${PY:-python3}
TARGET=${CARGO_TARGET_DIR:-target}
SEEDS=${SEEDS:-0 1 2}
COPIES=${COPIES:-2}
OUT=$W/ablation
mkdir -p "$OUT" "$W/npz"
cargo build --release -q -p bitseek-learn --example train_head --example mine_negatives
for l in python rust; do
  for s in val-cap test; do
    [ -e "$W/npz/$l-$s.npz" ] || $PY scripts/head_vectors.py npz "$W/data/$l-$s.jsonl" "$W/npz/$l-$s.npz"
  done
done
for s in train-cap val-cap; do  # both languages, Python first (as scripts/train_code_head.sh)
  [ -e "$W/npz/both-$s.npz" ] || $PY - "$W/data" "$W/npz" "$s" <<'PYEOF'
import sys, numpy as np
data, d, s = sys.argv[1:]
v = lambda l, side: np.load(f"{data}/{l}-{s}.{side}.f32.npy").astype(np.float32)
np.savez(f"{d}/both-{s}.npz", query=np.concatenate([v("python", "query"), v("rust", "query")]),
         doc=np.concatenate([v("python", "code"), v("rust", "code")]))
PYEOF
done
MINED=$OUT/mined-bm25-k${MINED_K:-4}.txt
[ -e "$MINED" ] || "$TARGET/release/examples/mine_negatives" --k "${MINED_K:-4}" \
  --pairs "$W/data/python-train-cap.jsonl" --pairs "$W/data/rust-train-cap.jsonl" \
  --npz "$W/npz/both-train-cap.npz" --out "$MINED"

racs="--augment racs:$COPIES --ops"
declare -A ARGS=(
  [minilm]="--epochs 0"
  [plain]=""
  [linear]="$racs linear"
  [interpolation]="$racs interpolation"
  [extrapolation]="$racs extrapolation"
  [binary]="$racs binary"
  [gaussian]="$racs gaussian"
  [dropout]="$racs dropout"
  [all]="$racs all"
  [plain+bm25]="--mined $MINED --mined-per-pair ${MINED_PER_PAIR:-1}"
)
AUGS="linear interpolation extrapolation binary gaussian dropout all"
ROWS=${ROWS:-minilm plain $AUGS plain+bm25 best+bm25}
run() {  # row args...
  local row=$1 seed
  shift
  local seeds=$SEEDS
  [ "$row" = minilm ] && seeds=0  # no training: MiniLM alone, the same for every seed
  for seed in $seeds; do
    if grep -q "\"row\": \"$row\", \"seed\": $seed," "$OUT/runs.jsonl" 2>/dev/null; then continue; fi
    local json
    json=$(RAYON_NUM_THREADS=${THREADS:-1} nice "$TARGET/release/examples/train_head" \
      --train "$W/npz/both-train-cap.npz" --val "$W/npz/both-val-cap.npz" --seed "$seed" "$@" \
      --eval "val_python:$W/npz/python-val-cap.npz" --eval "val_rust:$W/npz/rust-val-cap.npz" \
      --eval "test_python:$W/npz/python-test.npz" --eval "test_rust:$W/npz/rust-test.npz" \
      2>"$OUT/$row-$seed.log")
    echo "{\"row\": \"$row\", \"seed\": $seed, \"args\": \"$*\", \"result\": $json}" >> "$OUT/runs.jsonl"
    echo "$row seed $seed: $json" >&2
  done
}
for row in $ROWS; do
  if [ "$row" = best+bm25 ]; then
    # The augmentation whose mean validation MRR (both languages) is highest, chosen on
    # validation only.
    best=$($PY bench/head_ablation_table.py "$OUT/runs.jsonl" --best-of $AUGS)
    echo "best augmentation on validation: $best" >&2
    # shellcheck disable=SC2086
    run "$best+bm25" ${ARGS[$best]} ${ARGS[plain+bm25]}
  else
    # shellcheck disable=SC2086
    run "$row" ${ARGS[$row]}
  fi
done
$PY bench/head_ablation_table.py "$OUT/runs.jsonl"
