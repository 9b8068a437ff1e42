#!/usr/bin/env bash
# Trains the code-search head that ships in crates/bitseek-codesearch/assets/code-head.safetensors
# (issue 16, tier 1) from the mined pairs, as it was trained: the capped training set
# (`head_vectors.py cap`: at most 120 pairs per Python package, 150 per Rust crate; 8,926 pairs of
# train-split packages) with the capped validation set (60 per package) choosing the epoch;
# plain InfoNCE over all in-batch negatives, no RACS, seed 0 (the train_head defaults).
#
#   python scripts/mine_pairs.py --packages scripts/mine_pairs.txt --dev ../shared/data/codesearch --out $W/data
#   W=$W bash scripts/train_code_head.sh [OUT]
#
# Embeds the capped sets with bitseek's model (the installed all-MiniLM-L6-v2, whose fingerprint
# goes into the file) and writes OUT (default: the shipped asset). Minutes on a laptop.
# LANGS (default "python rust") adds languages mine_pairs.py wrote, e.g.
# LANGS="python rust javascript typescript go" (120 training pairs per package but Rust's 150).
#
# With ADAPTER=FILE the sets are embedded with that LoRA adapter merged into the model (vectors
# under $W/data-lora/) and the head is recorded as made for the adapted vectors: the shipped
# tier 1 + 2 head is
#   ADAPTER=crates/bitseek-embed/adapters/minilm-code-lora.safetensors W=$W bash scripts/train_code_head.sh \
#       crates/bitseek-codesearch/assets/code-head-lora.safetensors
set -euo pipefail
: "${W:?set W to the work folder that mine_pairs.py wrote data/ into}"
PY=${PY:-python3}
OUT=${1:-crates/bitseek-codesearch/assets/code-head.safetensors}
cargo build --release -q -p bitseek-learn --example train_head
cargo build --release -q -p bitseek-codesearch --example embed_pairs
ADAPTER=${ADAPTER:-}
D="$W/data"; N="$W/npz"; EMBED_ARGS=(); TRAIN_ARGS=()
if [ -n "$ADAPTER" ]; then
  D="$W/data-lora"; N="$W/npz-lora"; mkdir -p "$D"
  EMBED_ARGS=("${BITSEEK_MODEL_DIR:-$HOME/.cache/bitseek/models/all-MiniLM-L6-v2}" "$ADAPTER")
  TRAIN_ARGS=(--adapter "$ADAPTER")
fi
mkdir -p "$N"
LANGS=${LANGS:-python rust}
for l in $LANGS; do
  cap=$([ $l = rust ] && echo 150 || echo 120)
  $PY scripts/head_vectors.py cap "$W/data/$l-train.jsonl" $cap "$D/$l-train-cap.jsonl"
  $PY scripts/head_vectors.py cap "$W/data/$l-val.jsonl" 60 "$D/$l-val-cap.jsonl"
  for s in train-cap val-cap; do
    [ -e "$D/$l-$s.code.f32.npy" ] || target/release/examples/embed_pairs "$D/$l-$s.jsonl" "${EMBED_ARGS[@]}"
    $PY scripts/head_vectors.py npz "$D/$l-$s.jsonl" "$N/$l-$s.npz"
  done
done
for s in train-cap val-cap; do
  $PY - "$N" "$s" $LANGS <<'PYEOF'
import sys, numpy as np
d, s, langs = sys.argv[1], sys.argv[2], sys.argv[3:]
parts = [np.load(f"{d}/{l}-{s}.npz") for l in langs]
np.savez(f"{d}/both-{s}.npz", query=np.concatenate([p["query"] for p in parts]), doc=np.concatenate([p["doc"] for p in parts]))
PYEOF
done
target/release/examples/train_head --train "$N/both-train-cap.npz" --val "$N/both-val-cap.npz" --save "$OUT" "${TRAIN_ARGS[@]}"
