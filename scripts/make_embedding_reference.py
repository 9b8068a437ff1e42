#!/usr/bin/env python3
"""Writes crates/bitseek-embed/tests/data/reference.json: embeddings made by sentence-transformers.

The Rust parity test (crates/bitseek-embed/tests/parity.rs) embeds the same texts with bitseek-embed
and requires a cosine of at least 0.999 with these vectors for every text.

    python3 scripts/make_embedding_reference.py [--model-dir DIR]

It creates bench/.venv-st (git-ignored) with sentence-transformers and CPU torch from PyPI, then loads
the model directory that `bitseek model fetch` unpacked (or --model-dir, or $BITSEEK_MODEL_DIR) with
SentenceTransformer(path). Nothing is downloaded from a model hub (HF_HUB_OFFLINE=1).
"""

import argparse
import gzip
import json
import os
import sys
from pathlib import Path

from torch_env import default_model_dir, ensure_venv

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates" / "bitseek-embed" / "tests" / "data" / "reference.json"
DATA = Path(os.environ.get("BITSEEK_CODESEARCH_DATA", ROOT.parent / "shared" / "data" / "codesearch"))

def functions(path: Path, n: int, min_chars: int, max_chars: int) -> list[str]:
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            code = json.loads(line)["code"]
            if min_chars <= len(code) <= max_chars:
                out.append(code)
                if len(out) == n:
                    break
    return out


def texts() -> list[str]:
    questions = [
        "How do I read a file line by line?",
        "sort a list of dictionaries by a key",
        "What is the difference between a process and a thread?",
        "parse command line arguments",
        "convert a string to an integer with error handling",
        "Why does my binary search loop forever?",
        "open a TCP connection with a timeout",
        "compute the sha256 checksum of a file",
    ]
    python = functions(DATA / "dev-python.jsonl.gz", 6, 80, 700)
    rust = functions(DATA / "dev-rust.jsonl.gz", 6, 80, 700)
    longer = functions(DATA / "dev-python.jsonl.gz", 1, 3000, 6000)  # far past 256 tokens
    unicode = [
        "Größe einer Datei ermitteln — naïve café façade, 文件大小, ファイルを開く, 😀 ✓ ∑ → λ",
    ]
    edge = ["", "x"]
    return questions + python + rust + longer + unicode + edge


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=default_model_dir())
    args = ap.parse_args()
    if not (args.model_dir / "model.safetensors").exists():
        sys.exit(f"no model at {args.model_dir}: run `bitseek model fetch` first (or pass --model-dir)")
    ensure_venv()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(args.model_dir), device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    ts = texts()
    vecs = model.encode(ts, batch_size=8, normalize_embeddings=True, convert_to_numpy=True)
    tok = model.tokenizer
    lengths = [len(tok(t, truncation=False)["input_ids"]) for t in ts]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as f:
        f.write("{\n")
        f.write(f'"made_by": "scripts/make_embedding_reference.py: sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}, max_seq_length 256",\n')
        f.write('"items": [\n')
        for i, (t, v, n) in enumerate(zip(ts, vecs, lengths)):
            item = {"text": t, "tokens": n, "vector": [round(float(x), 6) for x in v]}
            f.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")))
            f.write(",\n" if i + 1 < len(ts) else "\n")
        f.write("]\n}\n")
    print(f"wrote {OUT}: {len(ts)} texts, longest {max(lengths)} tokens", file=sys.stderr)


if __name__ == "__main__":
    main()
