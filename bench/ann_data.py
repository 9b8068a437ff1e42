#!/usr/bin/env python3
"""Write the base and queries bench/ann_curves.py measures on, from the code-search dev sets.

    python3 bench/ann_data.py [--src ../shared/data/codesearch] --out DIR

Base: both languages' code embeddings plus all their docstring embeddings but 1,000 (133,092 ×
384 for the dev sets); queries: those 1,000 docstrings, drawn with a fixed seed. The queries' own
code is in the base, as in code search. Written as float32 `DIR/ann-base.npy`, `DIR/ann-queries.npy`.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SRC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "data", "codesearch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=DEFAULT_SRC)
    ap.add_argument("--out", required=True)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=11)
    a = ap.parse_args()
    load = lambda n: np.load(os.path.join(a.src, n)).astype(np.float32)  # noqa: E731
    code = np.concatenate([load(f"dev-{lang}.code.f16.npy") for lang in ("rust", "python")])
    docs = np.concatenate([load(f"dev-{lang}.query.f16.npy") for lang in ("rust", "python")])
    held = np.random.default_rng(a.seed).permutation(len(docs))
    queries, rest = docs[held[: a.queries]], docs[np.sort(held[a.queries :])]
    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "ann-base.npy"), np.concatenate([code, rest]))
    np.save(os.path.join(a.out, "ann-queries.npy"), queries)
    print(f"base {len(code) + len(rest)} × {code.shape[1]}, queries {len(queries)} -> {a.out}")


if __name__ == "__main__":
    main()
