#!/usr/bin/env bash
# Demo of the main job on data the repository ships (data/demo/, see its README): 2,000 Rust
# functions and the doc comments of the first 200, embedded with all-MiniLM-L6-v2 (384-d).
# Builds a RaBitQ index (1 bit per dimension plus 3 correction floats, f32 copy kept for
# rescoring), answers three doc comments, and measures recall@10 against exact float search.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p bitseek
bitseek=${CARGO_TARGET_DIR:-target}/release/bitseek
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

$bitseek build --input data/demo/rust-functions.f16.npy --quantizer rabitq --keep f32 --out "$out/demo.bitseek"
echo

# Doc comment i belongs to function i: the search should put it first.
$bitseek query "$out/demo.bitseek" --queries data/demo/rust-docstrings.f16.npy -k 3 --oversample 4 --json |
  head -3 | python3 -c '
import json, sys
docs = dict(l.rstrip("\n").split("\t", 1) for l in open("data/demo/rust-docstrings.tsv"))
funcs = {l.split("\t")[0]: l.rstrip("\n").split("\t")[1:] for l in open("data/demo/rust-functions.tsv")}
for line in sys.stdin:
    r = json.loads(line)
    q = str(r["query"])
    print(f"doc comment {q}: {docs[q]!r}")
    for h in r["hits"]:
        pkg, loc, name = funcs[str(h["id"])]
        mark = "  <- its function" if str(h["id"]) == q else ""
        score = h["score"]
        print(f"  {score:.3f}  {pkg} {loc}  {name}{mark}")
'
echo
$bitseek eval "$out/demo.bitseek" --queries data/demo/rust-docstrings.f16.npy -k 10 --oversample 1,2,4
