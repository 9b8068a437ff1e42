#!/usr/bin/env bash
# End-to-end peer comparison: bitseek vs FAISS / usearch on the same vector files.
#
#   bash bench/run.sh               # everything (about 10 min on 2 idle cores)
#   bash bench/run.sh --peers-only  # skip bitseek (no cargo build), peers only
#
# Steps: create bench/.venv (pinned numpy, faiss-cpu, usearch), write bench/data/*.npy if
# missing, cargo build --release -p bitseek, run bitseek build/eval/bench and peers.py on
# the same files, print one combined table. Results: bench/data/results/<time>/ (git-ignored),
# bench/data/results/latest -> the last run.
#
# Knobs (environment): REPEAT (5), THREADS (1,2), BATCH (64), Q59K (1000 queries for the
# 59k set), Q1M (128 queries for the 1M set, batch and one-query-per-call runs),
# PEER_FLOAT_Q59K (256) / PEER_FLOAT_Q1M (64): queries for the peers' float reference scan,
# BITSEEK_BENCH_59K_ARGS / BITSEEK_BENCH_1M_ARGS: extra flags for `bitseek bench` (defaults
# below: query counts, and no float baseline on 1M, whose one-query-per-call f32 scans would
# take minutes), BITSEEK_BIN: use this binary instead of building target/release/bitseek.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
DATA="$HERE/data"
PY="$HERE/.venv/bin/python"
BIN="${BITSEEK_BIN:-$ROOT/target/release/bitseek}"

REPEAT="${REPEAT:-5}"
THREADS="${THREADS:-1,2}"
BATCH="${BATCH:-64}"
Q59K="${Q59K:-1000}"
Q1M="${Q1M:-128}"
PEER_FLOAT_Q59K="${PEER_FLOAT_Q59K:-256}"
PEER_FLOAT_Q1M="${PEER_FLOAT_Q1M:-64}"
BITSEEK_BENCH_59K_ARGS="${BITSEEK_BENCH_59K_ARGS---max-queries $Q59K --single-queries 100}"
BITSEEK_BENCH_1M_ARGS="${BITSEEK_BENCH_1M_ARGS---max-queries $Q1M --single-queries $Q1M --no-float}"
QUANTIZERS=(sign rabitq residual2 residual3 residual4 int8)
K=10
OVERSAMPLE=1,2,4,8,16

PEERS_ONLY=0
for a in "$@"; do
    case "$a" in
        --peers-only) PEERS_ONLY=1 ;;
        -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "unknown argument: $a" >&2; exit 2 ;;
    esac
done

T0=$(date +%s)
step() { echo; echo "[run +$(( $(date +%s) - T0 ))s] $*"; }

step "python environment"
bash "$HERE/setup.sh"

step "data"
"$PY" "$HERE/make_data.py"
# query subsets, so that bitseek and the peers read the very same query file
subset() {  # subset SRC N DST
    [ -f "$3" ] || "$PY" -c "import numpy as np, sys; np.save(sys.argv[3], np.load(sys.argv[1])[:int(sys.argv[2])])" "$1" "$2" "$3"
}
Q59K_FILE="$DATA/queries-1k.f32.npy"
if [ "$Q59K" != 1000 ]; then Q59K_FILE="$DATA/queries-59k-q$Q59K.f32.npy"; subset "$DATA/queries-1k.f32.npy" "$Q59K" "$Q59K_FILE"; fi
Q1M_FILE="$DATA/queries-1m-q$Q1M.f32.npy"
subset "$DATA/queries-1m.f32.npy" "$Q1M" "$Q1M_FILE"
BASE59K="$DATA/base-59k.f32.npy"
BASE1M="$DATA/base-1m.f32.npy"

RES="$DATA/results/$(date +%Y%m%d-%H%M%S)"
IDX="$DATA/indexes"
mkdir -p "$RES" "$IDX"
ln -sfn "$RES" "$DATA/results/latest"
echo "results -> $RES"
uptime | sed 's/^/load: /'

# run_json OUTFILE CMD...: stdout (one JSON object) -> OUTFILE, stderr -> OUTFILE.log
run_json() {
    local out="$1"; shift
    if ! "$@" >"$out" 2>"$out.log"; then
        echo "error: command failed: $*" >&2
        tail -n 20 "$out.log" >&2 || true
        exit 1
    fi
}

if [ "$PEERS_ONLY" = 0 ]; then
    step "cargo build --release -p bitseek"
    if [ -n "${BITSEEK_BIN:-}" ]; then
        echo "BITSEEK_BIN=$BITSEEK_BIN: not building"
    elif ! (cd "$ROOT" && cargo build --release -p bitseek); then
        echo "error: cargo build --release -p bitseek failed (use --peers-only to run the peers alone)" >&2
        exit 1
    fi
    if [ ! -x "$BIN" ]; then
        echo "error: $BIN not found after the build (use --peers-only to run the peers alone)" >&2
        exit 1
    fi
    for sub in build bench eval; do
        if ! "$BIN" "$sub" --help >/dev/null 2>&1; then
            echo "error: '$BIN $sub' is not available: this bitseek binary does not implement the" >&2
            echo "       build/bench/eval CLI this benchmark expects (use --peers-only to run the peers alone)" >&2
            exit 1
        fi
    done

    step "bitseek on 59k: build + eval for ${QUANTIZERS[*]}"
    for q in "${QUANTIZERS[@]}"; do
        run_json "$RES/bitseek-build-59k-$q.json" \
            "$BIN" build --input "$BASE59K" --quantizer "$q" --keep f32 --out "$IDX/59k-$q.bitseek" --json
        run_json "$RES/bitseek-eval-59k-$q.json" \
            "$BIN" eval "$IDX/59k-$q.bitseek" --queries "$Q59K_FILE" -k "$K" --oversample "$OVERSAMPLE" --json
        echo "  $q: $(tr -d '\n' < "$RES/bitseek-eval-59k-$q.json" | cut -c1-160)"
    done

    step "bitseek bench on 59k (sign, $Q59K queries)"
    # shellcheck disable=SC2086
    run_json "$RES/bitseek-bench-59k.json" \
        "$BIN" bench "$IDX/59k-sign.bitseek" --queries "$Q59K_FILE" -k "$K" --batch "$BATCH" \
        --threads "$THREADS" --repeat "$REPEAT" --json $BITSEEK_BENCH_59K_ARGS

    step "bitseek on 1M: build sign (--keep none) + bench ($Q1M queries)"
    run_json "$RES/bitseek-build-1m-sign.json" \
        "$BIN" build --input "$BASE1M" --quantizer sign --keep none --out "$IDX/1m-sign.bitseek" --json
    # shellcheck disable=SC2086
    run_json "$RES/bitseek-bench-1m.json" \
        "$BIN" bench "$IDX/1m-sign.bitseek" --queries "$Q1M_FILE" -k "$K" --batch "$BATCH" \
        --threads "$THREADS" --repeat "$REPEAT" --json $BITSEEK_BENCH_1M_ARGS
fi

step "peers on 59k"
"$PY" "$HERE/peers.py" --base "$BASE59K" --queries "$Q59K_FILE" --label 59k -k "$K" --batch "$BATCH" \
    --threads "$THREADS" --repeat "$REPEAT" --nq "$Q59K" --float-nq "$PEER_FLOAT_Q59K" \
    --rabitq-bits 1,2,4 --oversample "$OVERSAMPLE" --json-out "$RES/peers-59k.json" | tee "$RES/peers-59k.txt"

step "peers on 1M"
"$PY" "$HERE/peers.py" --base "$BASE1M" --queries "$Q1M_FILE" --label 1m -k "$K" --batch "$BATCH" \
    --threads "$THREADS" --repeat "$REPEAT" --nq "$Q1M" --float-nq "$PEER_FLOAT_Q1M" \
    --single-nq "$Q1M" --no-recall --json-out "$RES/peers-1m.json" | tee "$RES/peers-1m.txt"

step "combined table"
"$PY" "$HERE/report.py" "$RES" --batch "$BATCH" --threads "$THREADS" --json-out "$RES/combined.json" \
    | tee "$RES/report.txt"
step "done"
