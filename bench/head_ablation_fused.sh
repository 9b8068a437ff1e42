#!/usr/bin/env bash
# The top rows of bench/head_ablation.sh through the shipped path: each run of ROWS is trained
# again with its recorded arguments and seed, saved as a head file (f16, as shipped) and measured
# by `bitseek eval-code --encoder FILE --hybrid` on the capped validation packages and the held-out
# test packages, semantic only (float32) and fused with BM25 as `bitseek search` ranks ("hybrid,
# top 100/leg (as search)"). A head file already in $W/ablation/heads is measured, not retrained.
#
#   W=$W ROWS="plain binary plain+bm25" bash bench/head_ablation_fused.sh
#
# Needs $W/ablation/runs.jsonl from bench/head_ablation.sh. Results: $W/ablation/fused.jsonl and
# the table on stdout (`bench/head_ablation_table.py --fused`).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${W:?set W to the work folder of bench/head_ablation.sh}" "${ROWS:?set ROWS to the rows to measure}"
PY=${PY:-python3}
TARGET=${CARGO_TARGET_DIR:-target}
OUT=$W/ablation
mkdir -p "$OUT/heads" "$W/eval"
cargo build --release -q -p bitseek-learn --example train_head
cargo build --release -q -p bitseek
for l in python rust; do
  for s in test val-cap; do
    [ -e "$W/eval/$l-$s.query.f16.npy" ] || $PY scripts/head_vectors.py eval "$W/data/$l-$s.jsonl" \
      "$W/data/$l-$s.query.f32.npy" "$W/data/$l-$s.code.f32.npy" "$W/eval"
  done
done
for row in $ROWS; do
  $PY - "$OUT/runs.jsonl" "$row" <<'PYEOF' > "$OUT/fused-todo-$row.txt"
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["row"] == sys.argv[2]:
        print(r["seed"], r["args"])
PYEOF
  while read -r seed args; do
    if grep -q "\"row\": \"$row\", \"seed\": $seed," "$OUT/fused.jsonl" 2>/dev/null; then continue; fi
    head="$OUT/heads/$row-$seed.safetensors"
    # shellcheck disable=SC2086
    [ -e "$head" ] || RAYON_NUM_THREADS=${THREADS:-1} nice "$TARGET/release/examples/train_head" \
      --train "$W/npz/both-train-cap.npz" --val "$W/npz/both-val-cap.npz" --seed "$seed" $args \
      --save "$head" > "$OUT/heads/$row-$seed.json" 2> "$OUT/heads/$row-$seed.log"
    for l in python rust; do
      for s in test val-cap; do
        nice "$TARGET/release/bitseek" eval-code "$W/eval/$l-$s.jsonl" --encoder "$head" \
          --quantizer int8 --hybrid --json > "$OUT/heads/$row-$seed-$l-$s.json"
      done
    done
    $PY - "$OUT/heads/$row-$seed" "$row" "$seed" <<'PYEOF' >> "$OUT/fused.jsonl"
import json, sys
stem, row, seed = sys.argv[1:]
out = {"row": row, "seed": int(seed)}
for s, key in (("test", ""), ("val-cap", "val_")):
    for l in ("python", "rust"):
        d = {m["method"]: m["all"]["mrr"] for m in json.load(open(f"{stem}-{l}-{s}.json"))["methods"]}
        out[key + l] = {"semantic": d["float32"], "fused": d["hybrid, top 100/leg (as search)"]}
print(json.dumps(out))
PYEOF
    echo "$row seed $seed: $(tail -1 "$OUT/fused.jsonl")" >&2
  done < "$OUT/fused-todo-$row.txt"
done
$PY bench/head_ablation_table.py "$OUT/runs.jsonl" --fused "$OUT/fused.jsonl"
