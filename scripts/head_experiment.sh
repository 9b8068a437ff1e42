#!/usr/bin/env bash
# The tier-1 code-search head experiment (issue 16): MiniLM as shipped against the head trained on
# mined, package-disjoint pairs, with and without RACS, on the held-out test packages and the dev
# sets, semantic only and fused with BM25 (`bitseek eval-code --hybrid`).
#
#   python scripts/mine_pairs.py --packages scripts/mine_pairs.txt \
#       --dev ../shared/data/codesearch --out $W/data          # needs tree-sitter, tree-sitter-rust
#   W=$W DEV=../shared/data/codesearch bash scripts/head_experiment.sh
#
# $W/data must hold {python,rust}-{$TRAIN,$VAL,test}.jsonl (default TRAIN=train VAL=val) with the
# vectors the embed_pairs example writes beside them (.query.f32.npy, .code.f32.npy). Results go to
# $W/results. The first reported run used TRAIN=train-cap VAL=val-cap: `head_vectors.py cap` with
# 120 (Python) / 150 (Rust) training pairs and 60 validation pairs per package.
set -euo pipefail
: "${W:?set W to the work folder}" "${DEV:?set DEV to the dev set folder}"
PY=${PY:-python3}
BIN=${BIN:-target/release}
cargo build --release -q -p bitseek -p bitseek-learn --example train_head
mkdir -p "$W/results" "$W/npz"
TRAIN=${TRAIN:-train} VAL=${VAL:-val}
for s in $TRAIN $VAL; do
  for l in python rust; do $PY scripts/head_vectors.py npz "$W/data/$l-$s.jsonl" "$W/npz/$l-$s.npz"; done
  $PY - "$W/npz" "$s" <<'PYEOF'
import sys, numpy as np
d, s = sys.argv[1:]
a, b = np.load(f"{d}/python-{s}.npz"), np.load(f"{d}/rust-{s}.npz")
np.savez(f"{d}/both-{s}.npz", query=np.concatenate([a["query"], b["query"]]), doc=np.concatenate([a["doc"], b["doc"]]))
PYEOF
done
evaluate() {  # name lang pairs.jsonl query.npy code.npy [limit]
  local out="$W/eval/$1-$2"
  $PY scripts/head_vectors.py eval "$3" "$4" "$5" "$out"
  "$BIN/bitseek" eval-code "$out/$(basename "${3%.gz}")" --quantizer int8 --hybrid ${6:+--limit $6} \
    | tee "$W/results/$1-$2.txt"
}
dev_vectors() {  # lang side -> f32 npy of the shipped dev embeddings
  $PY -c "import numpy as np,sys; np.save(sys.argv[2], np.load(sys.argv[1]).astype(np.float32))" \
    "$DEV/dev-$1.$2.f16.npy" "$W/npz/dev-$1.$2.f32.npy"
}
for l in python rust; do
  dev_vectors $l query; dev_vectors $l code
  evaluate shipped "test-$l" "$W/data/$l-test.jsonl" "$W/data/$l-test.query.f32.npy" "$W/data/$l-test.code.f32.npy"
  evaluate shipped "dev-$l" "$DEV/dev-$l.jsonl.gz" "$W/npz/dev-$l.query.f32.npy" "$W/npz/dev-$l.code.f32.npy" ${DEV_LIMIT:-}
done
for aug in none racs; do
  args=()
  for l in python rust; do
    for s in test dev; do
      if [ $s = test ]; then src="$W/data/$l-test"; else src="$W/npz/dev-$l"; fi
      args+=(--apply "query:$src.query.f32.npy:$W/npz/head-$aug-$s-$l.query.npy"
             --apply "doc:$src.code.f32.npy:$W/npz/head-$aug-$s-$l.code.npy")
    done
  done
  "$BIN/examples/train_head" --train "$W/npz/both-$TRAIN.npz" --val "$W/npz/both-$VAL.npz" \
    --augment $aug ${HEAD_ARGS:-} "${args[@]}" | tee "$W/results/train-$aug.json"
  for l in python rust; do
    evaluate "head-$aug" "test-$l" "$W/data/$l-test.jsonl" "$W/npz/head-$aug-test-$l.query.npy" "$W/npz/head-$aug-test-$l.code.npy"
    evaluate "head-$aug" "dev-$l" "$DEV/dev-$l.jsonl.gz" "$W/npz/head-$aug-dev-$l.query.npy" "$W/npz/head-$aug-dev-$l.code.npy" ${DEV_LIMIT:-}
  done
done
