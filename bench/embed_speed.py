#!/usr/bin/env python3
"""Embedding throughput: bitseek (in-process, f32 and --int8) next to sentence-transformers (PyTorch, CPU).

Both embed the same 2,000 Python functions from dev-python.jsonl.gz with the same model directory
(the one `bitseek model fetch` installed), the same 256-token window and the same batch size, and
each reports the median of 3 timed runs after a warm-up, in texts per second.

    python3 bench/embed_speed.py [--texts 2000] [--batch 32] [--runs 3] [--model-dir DIR]

sentence-transformers and torch come from PyPI into bench/.venv-st (git-ignored), created on first
use; bitseek is built with `cargo build --release -p bitseek` unless --bitseek names a binary.
"""

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from torch_env import default_model_dir, ensure_venv  # noqa: E402  (scripts/ is not a package)


def default_data() -> Path:
    p = ROOT.parent / "shared" / "data" / "codesearch"
    if p.exists():
        return p / "dev-python.jsonl.gz"
    return Path("dev-python.jsonl.gz")


def sentence_transformers_speed(model_dir: Path, texts: list[str], batch: int, runs: int) -> dict:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu")
    model.max_seq_length = 256
    model.encode(texts[:batch], batch_size=batch)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.encode(texts, batch_size=batch, normalize_embeddings=True)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"texts_per_s": len(texts) / median, "median_s": median, "runs_s": times,
            "threads": torch.get_num_threads(), "version": f"torch {torch.__version__}"}


def bitseek_speed(binary: str, model_dir: Path, texts: list[str], batch: int, runs: int,
                  int8: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "texts.jsonl"
        path.write_text("".join(json.dumps(t) + "\n" for t in texts), encoding="utf-8")
        out = subprocess.run(
            [binary, "model", "bench", "--texts", str(path), "--batch", str(batch),
             "--runs", str(runs), "--model-dir", str(model_dir), "--json", *(["--int8"] if int8 else [])],
            check=True, capture_output=True, text=True,
        ).stdout
    return json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--model-dir", type=Path, default=default_model_dir())
    ap.add_argument("--bitseek", help="a bitseek binary (default: build one with cargo)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not (args.model_dir / "model.safetensors").exists():
        sys.exit(f"no model at {args.model_dir}: run `bitseek model fetch` first (or pass --model-dir)")
    ensure_venv()

    texts = []
    with gzip.open(args.data, "rt", encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["code"])
            if len(texts) == args.texts:
                break

    binary = args.bitseek
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "bitseek"], cwd=ROOT, check=True)
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        binary = str(target / "release" / "bitseek")

    bs = bitseek_speed(binary, args.model_dir, texts, args.batch, args.runs)
    b8 = bitseek_speed(binary, args.model_dir, texts, args.batch, args.runs, int8=True)
    st = sentence_transformers_speed(args.model_dir, texts, args.batch, args.runs)
    ratio = bs["texts_per_s"] / st["texts_per_s"]
    ratio8 = b8["texts_per_s"] / st["texts_per_s"]
    if args.json:
        print(json.dumps({"texts": len(texts), "batch": args.batch, "bitseek": bs, "bitseek_int8": b8,
                          "sentence_transformers": st, "ratio": ratio, "ratio_int8": ratio8}))
        return
    print(f"{len(texts)} Python functions from {args.data.name}, window 256 tokens, batch {args.batch}, "
          f"median of {args.runs} runs")
    print(f"{'':24}{'texts/s':>10}{'median s':>10}{'threads':>9}")
    print(f"{'bitseek (f32)':24}{bs['texts_per_s']:>10.1f}{bs['median_s']:>10.2f}{bs['threads']:>9}")
    print(f"{'bitseek (--int8)':24}{b8['texts_per_s']:>10.1f}{b8['median_s']:>10.2f}{b8['threads']:>9}")
    print(f"{'sentence-transformers':24}{st['texts_per_s']:>10.1f}{st['median_s']:>10.2f}{st['threads']:>9}"
          f"   ({st['version']})")
    print(f"bitseek / sentence-transformers: {ratio:.2f}x (f32), {ratio8:.2f}x (int8)")


if __name__ == "__main__":
    main()
