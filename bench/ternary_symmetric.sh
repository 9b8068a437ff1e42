#!/usr/bin/env bash
# End-to-end scan time of ternary codes with symmetric queries (`bitseek bench --symmetric`: the
# query is itself a ternary code, scored by the two-popcount kernel) against ternary's asymmetric
# 4-bit query and rabitq's, on the dev-python code embeddings (docstring embeddings as queries),
# one thread, the four runs alternated over ROUNDS rounds, medians; raw recall@10 of each timed
# search from the same runs.
# Usage: bash bench/ternary_symmetric.sh [DATA_DIR] (default ../shared/data/codesearch) [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/codesearch}
OUT=${2:-$(mktemp -d)}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release -p bitseek
B="$TARGET/release/bitseek"
BASE="$DATA/dev-python.code.f16.npy"
QUERIES="$DATA/dev-python.query.f16.npy"
for q in ternary rabitq; do
  [ -e "$OUT/$q.bitseek" ] || "$B" build --input "$BASE" --quantizer "$q" --metric cosine --keep f32 \
    --out "$OUT/$q.bitseek" > /dev/null
done
RUNS="ternary:symmetric ternary:asymmetric rabitq:asymmetric rabitq:symmetric"
for round in $(seq 1 "${ROUNDS:-5}"); do
  for run in $RUNS; do
    q=${run%%:*} mode=${run#*:}
    flag=""; [ "$mode" = symmetric ] && flag=--symmetric
    "$B" bench "$OUT/$q.bitseek" --queries "$QUERIES" $flag --threads 1 --repeat 3 \
      --single-queries 100 --max-queries 256 --no-float --json > "$OUT/bench-$round-$q-$mode.json"
  done
done
python3 - "$OUT" "${ROUNDS:-5}" $RUNS <<'PY'
import json, statistics, sys
out, rounds, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def get(run):
    q, mode = run.split(":")
    rs = [json.load(open(f"{out}/bench-{r}-{q}-{mode}.json")) for r in range(1, rounds + 1)]
    ms = lambda kind: statistics.median(
        next(x["ms_per_query_median"] for x in r["runs"] if x["mode"] == kind) for r in rs)
    return ms("single"), ms("batch"), rs[0]["recall_raw"], rs[0]["bytes_per_vector"]
res = {run: get(run) for run in runs}
base = res["rabitq:asymmetric"]
print(f"| format, query | bytes/vector | raw recall@10 | ms/query, 1 per call | ms/query, 64 per call | time vs rabitq, 1 per call | time vs rabitq, 64 per call |")
print("|---|---:|---:|---:|---:|---:|---:|")
for run, (s, b, rec, bpv) in res.items():
    print(f"| {run.replace(':', ', ')} | {bpv} | {rec:.4f} | {s:.3f} | {b:.3f} | {s / base[0]:.2f}× | {b / base[1]:.2f}× |")
t_s, t_a = res["ternary:symmetric"], res["ternary:asymmetric"]
print(f"ternary symmetric vs asymmetric: {t_a[0] / t_s[0]:.2f}× single, {t_a[1] / t_s[1]:.2f}× batch (asymmetric time / symmetric time, medians of {rounds} alternated rounds)")
PY
