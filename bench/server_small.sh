#!/usr/bin/env bash
# The server against the library at small scale: queries per CPU-second on the 59k set, the
# library (threads calling `search`) next to the server over loopback with JSON bodies and with
# raw little-endian f32 bodies, in one process and one run (crates/bitseek-server/examples/load.rs).
#
#   bash bench/server_small.sh            # 1 and 8 connections, 5 passes of 3 s each, no writer
#   CONC=1,8,64 WRITER=1 bash bench/server_small.sh
#
# Needs bench/data/base-59k.f32.npy and queries-1k.f32.npy (bench/make_data.py; bench/run.sh
# makes them). Prints the machine's load before and after: on a shared machine compare the
# per-CPU-second ratios, which other processes disturb less than queries/s.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BASE="${BASE:-$HERE/data/base-59k.f32.npy}"
QUERIES="${QUERIES:-$HERE/data/queries-1k.f32.npy}"
CONC="${CONC:-1,8}"
REPEAT="${REPEAT:-5}"
SECONDS_PER_PASS="${SECONDS_PER_PASS:-3}"
OUT="${OUT:-$HERE/data/results/server-small.json}"

for f in "$BASE" "$QUERIES"; do
    if [ ! -f "$f" ]; then
        echo "missing $f: make it with bench/make_data.py (see bench/README.md)" >&2
        exit 1
    fi
done
mkdir -p "$(dirname "$OUT")"
cd "$ROOT"
cargo build --release -p bitseek-server --example load
writer=(--no-writer)
if [ "${WRITER:-0}" = 1 ]; then writer=(); fi
echo "load before: $(uptime)"
target/release/examples/load --base "$BASE" --queries "$QUERIES" --conc "$CONC" \
    --repeat "$REPEAT" --seconds "$SECONDS_PER_PASS" "${writer[@]}" --json-out "$OUT"
echo "load after: $(uptime)"
echo "results: $OUT"
