"""What the scripts that run sentence-transformers (here and bench/embed_speed.py) share: the
model directory and their venv.

`bench/.venv-st` (git-ignored) holds sentence-transformers and CPU torch from PyPI; a script calls
ensure_venv() first and is re-run inside it. The base model is read only from the local directory
`bitseek model fetch` unpacked (or $BITSEEK_MODEL_DIR); nothing is downloaded from a model hub.
"""

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv-st"
PACKAGES = ["sentence-transformers==5.*", "torch"]


def default_model_dir() -> Path:
    if os.environ.get("BITSEEK_MODEL_DIR"):
        return Path(os.environ["BITSEEK_MODEL_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "bitseek" / "models" / "all-MiniLM-L6-v2"


def ensure_venv() -> None:
    """Re-runs the calling script inside bench/.venv-st, creating it first when needed."""
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not python.exists():
        print(f"creating {VENV} (sentence-transformers, torch from PyPI)", file=sys.stderr)
        venv.create(VENV, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PACKAGES], check=True)
    os.execv(str(python), [str(python), *sys.argv])
