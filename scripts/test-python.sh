#!/usr/bin/env bash
# The Python package's tests, installed the way a user installs it: a fresh virtual environment,
# `pip install ./python` (maturin, fetched from PyPI as the build backend, builds the extension
# into the workspace's target/ with its Cargo.lock, so the library crates are not built twice),
# then pytest. pytest's "no tests collected" (exit 5) fails like any other failure.
#
#   bash scripts/test-python.sh     # needs python3 (>= 3.10) with venv and pip, and a Rust toolchain
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
"$PYTHON" -m venv "$venv"
# mcp: the official MCP Python SDK, the real client python/tests/test_mcp.py drives `bitseek mcp` with.
# tree-sitter and its grammars: scripts/mine_pairs.py's extraction rules (scripts/tests).
"$venv/bin/pip" install -q --disable-pip-version-check ./python numpy pytest mypy mcp \
  tree-sitter tree-sitter-rust tree-sitter-javascript tree-sitter-typescript tree-sitter-go
export BITSEEK_REQUIRE_MYPY=1  # the README example must type-check against the stubs
export BITSEEK_REQUIRE_MCP=1   # installed above: the MCP client test must not skip
# The CLI the interoperability tests compare against, from this checkout.
cargo build --release -q -p bitseek
export BITSEEK_BIN="$PWD/target/release/bitseek"
rc=0
# bitseek.ray's tests need Ray: scripts/test-ray.sh runs them in their own environment.
"$venv/bin/pytest" -q -p no:cacheprovider --ignore=python/tests/test_ray.py python/tests scripts/tests || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests from python/tests: refusing to pass" >&2
fi
exit "$rc"
