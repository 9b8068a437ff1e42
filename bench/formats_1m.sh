#!/usr/bin/env bash
# The cost half of the quantizer table at 1M rows: build seconds per million vectors and
# one-thread scan ms/query for every code format, with ACE per query, on the dev-python code
# embeddings plus jittered copies (examples/jittered.rs: real rows first, then copies with seeded
# Gaussian noise, renormalised) up to ROWS rows. Scans are raw code scans (no rescoring, no kept
# copy); formats are alternated over ROUNDS rounds and medians reported, with the ratio to rabitq
# taken within each round. Recall is measured on the real 59k set by bench/formats.sh, not here.
# Usage: bash bench/formats_1m.sh [DATA_DIR] (default ../shared/data/codesearch) [OUT_DIR] (default a temp dir)
# Environment: ROWS (1000000), ROUNDS (3), FORMATS (as bench/formats.sh), THREADS for building
# (default: all cores; the scan is always one thread). Needs about 1.6 GB in OUT_DIR for the
# vectors plus the largest index (int8, about 0.4 GB); each index is deleted after its scans.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/codesearch}
OUT=${2:-$(mktemp -d)}
TARGET=${CARGO_TARGET_DIR:-target}
ROWS=${ROWS:-1000000}
ROUNDS=${ROUNDS:-3}
FORMATS=${FORMATS:-"sign rabitq alloc:64 ternary residual2 alloc:112 int4 residual4 fp8 fp8-e5m2 int8"}
cargo build --release -p bitseek
cargo build --release -p bitseek-index --example jittered
B="$TARGET/release/bitseek"
BASE="$OUT/base-$ROWS.f32.npy"
QUERIES="$DATA/dev-python.query.f16.npy"
[ -e "$BASE" ] || "$TARGET/release/examples/jittered" "$DATA/dev-python.code.f16.npy" "$BASE" "$ROWS"
echo "load before: $(uptime)"
# rabitq first: every other format's rounds re-time it as their baseline.
for q in rabitq $(echo "$FORMATS" | tr ' ' '\n' | grep -vx rabitq); do
  f=${q//:/_}
  ${THREADS:+env RAYON_NUM_THREADS=$THREADS} "$B" build --input "$BASE" --quantizer "$q" --keep none \
    --out "$OUT/$f.bitseek" --json > "$OUT/build-$f.json"
  "$B" eval "$OUT/$f.bitseek" --queries "$QUERIES" --vectors "$BASE" --max-queries 5 \
    --oversample 1 --json > "$OUT/eval-$f.json"
  for round in $(seq 1 "$ROUNDS"); do
    "$B" bench "$OUT/$f.bitseek" --queries "$QUERIES" --threads 1 --repeat 3 --single-queries 20 \
      --max-queries 16 --no-float --json > "$OUT/bench-$round-$f.json"
    # rabitq again in the same round, so every ratio is taken on the same machine load.
    [ "$q" = rabitq ] || [ ! -e "$OUT/rabitq.bitseek" ] || "$B" bench "$OUT/rabitq.bitseek" \
      --queries "$QUERIES" --threads 1 --repeat 3 --single-queries 20 --max-queries 16 --no-float \
      --json > "$OUT/bench-$round-$f-rabitq.json"
  done
  [ "$q" = rabitq ] || rm -f "$OUT/$f.bitseek"
done
rm -f "$OUT/rabitq.bitseek"
echo "load after: $(uptime)"
python3 - "$OUT" "$ROWS" "$ROUNDS" $FORMATS <<'PY'
import json, statistics, sys
out, rows, rounds, formats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), [f.replace(":", "_") for f in sys.argv[4:]]
def single(path):
    runs = json.load(open(path))["runs"]
    return next(x["ms_per_query_median"] for x in runs if x["mode"] == "single")
print(f"{rows:,} rows (dev-python code + jittered copies), scan = one thread, raw codes, median of {rounds} rounds")
print("| format | bytes/vector | build s/1M | scan ms/query at 1M | scan vs `rabitq` (same round) | ACE/query |")
print("|---|---:|---:|---:|---:|---:|")
for f in formats:
    b = json.load(open(f"{out}/build-{f}.json"))
    e = json.load(open(f"{out}/eval-{f}.json"))
    ms = [single(f"{out}/bench-{r}-{f}.json") for r in range(1, rounds + 1)]
    base = [single(f"{out}/bench-{r}-{f}-rabitq.json") if f != "rabitq" else m
            for r, m in zip(range(1, rounds + 1), ms)]
    ratio = statistics.median(m / r for m, r in zip(ms, base))
    print(f"| `{b['quantizer']}` | {b['bytes_per_vector']} | {b['build_seconds'] * 1e6 / rows:.1f} | "
          f"{statistics.median(ms) * 1e6 / rows:.1f} | {ratio:.2f}× | {e['ace_per_query'] / 1e6:.0f} M |")
PY
