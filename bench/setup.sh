#!/usr/bin/env bash
# Create bench/.venv with the pinned peer libraries. Idempotent: re-running only
# installs what is missing or differs from bench/requirements.txt.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
REQ="$HERE/requirements.txt"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$PY" -m venv "$VENV"
fi

STAMP="$VENV/.requirements.sha256"
WANT="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
   && "$VENV/bin/python" -c 'import numpy, faiss, usearch' 2>/dev/null; then
    echo "[setup] $VENV is up to date"
    exit 0
fi

echo "[setup] installing pinned requirements"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
"$VENV/bin/python" - <<'PY'
import numpy, faiss, usearch
print(f"[setup] numpy {numpy.__version__}, faiss {faiss.__version__}, usearch {usearch.__version__}")
PY
echo "$WANT" > "$STAMP"
