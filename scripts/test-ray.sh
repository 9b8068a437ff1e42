#!/usr/bin/env bash
# bitseek.ray's tests: a fresh virtual environment with `pip install "./python[ray]"` (Ray, Ray
# Data, Ray Serve and pyarrow from PyPI) and moto (an S3-compatible server the tests start on
# loopback), then python/tests/test_ray.py on a 2-node Ray cluster on 127.0.0.1. About 1 GB of
# packages: 1 to 3 min to install (the extension build reuses target/), ~3 min to run on 2 cores.
#
#   bash scripts/test-ray.sh     # needs python3 (>= 3.9) with venv and pip, and a Rust toolchain
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
"$PYTHON" -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "./python[ray]" "moto[server]" pytest
export BITSEEK_REQUIRE_RAY=1  # a missing Ray fails instead of skipping
"$venv/bin/pytest" -q -p no:cacheprovider python/tests/test_ray.py
