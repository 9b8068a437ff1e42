#!/usr/bin/env bash
# The quantizer table of the README: every code format on the dev-python code embeddings, recall
# and rescoring oversampling from `bitseek eval`, one-thread scan time as a ratio to rabitq from
# `bitseek bench` (formats alternated over three rounds, medians), ACE from `eval --json`.
# Usage: bash bench/formats.sh [DATA_DIR] (default ../shared/data/codesearch) [OUT_DIR] (default a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/codesearch}
OUT=${2:-$(mktemp -d)}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release -p bitseek
B="$TARGET/release/bitseek"
BASE="$DATA/dev-python.code.f16.npy"
QUERIES="$DATA/dev-python.query.f16.npy"
FORMATS=${FORMATS:-"sign rabitq alloc:64 ternary residual2 alloc:112 int4 residual4 fp8 fp8-e5m2 int8"}
for q in $FORMATS; do
  f=${q//:/_}
  "$B" build --input "$BASE" --quantizer "$q" --keep f32 --out "$OUT/$f.bitseek" --json > "$OUT/build-$f.json"
  "$B" eval "$OUT/$f.bitseek" --queries "$QUERIES" --max-queries 1000 \
    --oversample 1,2,3,4,6,8,12,16,24,32 --json > "$OUT/eval-$f.json"
done
for round in 1 2 3; do
  for q in $FORMATS; do
    f=${q//:/_}
    "$B" bench "$OUT/$f.bitseek" --queries "$QUERIES" --threads 1 --repeat 3 --single-queries 50 \
      --max-queries 128 --no-float --json > "$OUT/bench-$round-$f.json"
  done
done
python3 - "$OUT" $FORMATS <<'PY'
import json, statistics, sys
out, formats = sys.argv[1], [f.replace(":", "_") for f in sys.argv[2:]]
def single(r, f):
    runs = json.load(open(f"{out}/bench-{r}-{f}.json"))["runs"]
    return next(x["ms_per_query_median"] for x in runs if x["mode"] == "single")
print("| format | bytes/vector | raw recall@10 | ×N for 0.95 / 0.98 / 0.99 | scan vs `rabitq` | ACE/query |")
print("|---|---:|---:|---|---:|---:|")
for f in formats:
    d = json.load(open(f"{out}/eval-{f}.json"))
    res = [(r["oversample"], r["recall_rescored"]) for r in d["results"]]
    need = lambda t: next((str(o) for o, r in res if r >= t), ">32")
    ratio = statistics.median(single(r, f) / single(r, "rabitq") for r in (1, 2, 3))
    print(f"| `{d['quantizer']}` | {d['bytes_per_vector']} | {d['recall_raw']:.3f} | "
          f"{need(.95)} / {need(.98)} / {need(.99)} | {ratio:.1f}× | {d['ace_per_query'] / 1e6:.0f} M |")
PY
