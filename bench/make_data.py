#!/usr/bin/env python3
"""Write the benchmark vector files to bench/data/ (deterministic, seeded).

Files written (all float32, row-major .npy):

  base-59k.f32.npy    the real database: 59,406 code embeddings (all-MiniLM-L6-v2,
                      384-d, L2-normalised) of the Python code-search dev set.
  queries-1k.f32.npy  the first 1000 query (docstring) embeddings of the same set.
                      Rows are stored in a seeded random order, so a prefix is a
                      uniform sample.
  base-1m.f32.npy     >= 1,000,000 vectors: the real database repeated 17 times, copy r
                      multiplied by a seeded random orthogonal matrix R_r (Q factor of the
                      QR decomposition of a seeded 384x384 Gaussian matrix, sign-fixed so
                      it is Haar-distributed); R_0 is the identity, so rows 0..59,405 are
                      the real database unchanged.  A rotation preserves all norms and all
                      inner products *within* a copy, so every copy has exactly the real
                      set's geometry (neighbour structure, spread of scores, norms); only
                      the orientation differs.  17 x 59,406 = 1,009,902 rows.
  queries-1m.f32.npy  the same 1000 real queries, unrotated.

Caveat for the 1M set: the queries are not rotated, so their true neighbours are in
copy 0 (the real data) in almost all cases; the rotated copies act as realistic
distractors with the real set's per-copy geometry but they are NOT guaranteed to hold
near neighbours of the queries.  Use the 1M set for throughput (scan speed, memory
bandwidth); measure recall on the 59k set.

Usage: make_data.py [--src DIR] [--out DIR] [--force]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# the code-search dev sets beside the repository (../shared/data/codesearch)
DEFAULT_SRC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "data", "codesearch")
SEED = 20240611          # master seed for the rotations
N_COPIES = 17            # rotation 0 = identity, 1..16 random orthogonal
N_QUERIES = 1000


def random_rotation(dim: int, rng: np.random.Generator) -> np.ndarray:
    """Haar-random orthogonal matrix: QR of a Gaussian matrix with the sign fix."""
    g = rng.standard_normal((dim, dim))
    q, r = np.linalg.qr(g)
    q *= np.sign(np.diag(r))[None, :]
    return q


def expected_files(n: int, d: int, nq: int) -> dict[str, tuple[int, int]]:
    return {
        "base-59k.f32.npy": (n, d),
        "queries-1k.f32.npy": (nq, d),
        "base-1m.f32.npy": (n * N_COPIES, d),
        "queries-1m.f32.npy": (nq, d),
    }


def up_to_date(out: str, want: dict[str, tuple[int, int]]) -> bool:
    for name, shape in want.items():
        p = os.path.join(out, name)
        if not os.path.exists(p):
            return False
        try:
            a = np.load(p, mmap_mode="r")
        except Exception:
            return False
        if a.shape != shape or a.dtype != np.float32:
            return False
    return os.path.exists(os.path.join(out, "manifest.json"))


def save_atomic(path: str, arr: np.ndarray) -> None:
    tmp = path + ".tmp.npy"
    np.save(tmp, arr)
    os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=DEFAULT_SRC, help="folder with dev-python.{code,query}.f16.npy")
    ap.add_argument("--out", default=os.path.join(HERE, "data"))
    ap.add_argument("--force", action="store_true", help="rewrite even if the files look complete")
    args = ap.parse_args()

    code_p = os.path.join(args.src, "dev-python.code.f16.npy")
    query_p = os.path.join(args.src, "dev-python.query.f16.npy")
    for p in (code_p, query_p):
        if not os.path.exists(p):
            print(f"error: missing {p}", file=sys.stderr)
            return 1
    code16 = np.load(code_p, mmap_mode="r")
    n, d = code16.shape
    want = expected_files(n, d, N_QUERIES)
    os.makedirs(args.out, exist_ok=True)
    if not args.force and up_to_date(args.out, want):
        print(f"[make_data] {args.out}: all files present, nothing to do (--force to rewrite)")
        return 0

    t0 = time.perf_counter()
    base = np.ascontiguousarray(code16, dtype=np.float32)
    queries = np.ascontiguousarray(np.load(query_p, mmap_mode="r")[:N_QUERIES], dtype=np.float32)
    save_atomic(os.path.join(args.out, "base-59k.f32.npy"), base)
    save_atomic(os.path.join(args.out, "queries-1k.f32.npy"), queries)
    save_atomic(os.path.join(args.out, "queries-1m.f32.npy"), queries)
    print(f"[make_data] base-59k: {base.shape}, queries-1k: {queries.shape}  (real data, f16 -> f32)")

    # 1M set: N_COPIES rotated copies of the real database, written straight to disk.
    big_p = os.path.join(args.out, "base-1m.f32.npy")
    tmp_p = big_p + ".tmp.npy"
    big = np.lib.format.open_memmap(tmp_p, mode="w+", dtype=np.float32, shape=(n * N_COPIES, d))
    rng = np.random.default_rng(SEED)
    base64 = base.astype(np.float64)
    for r in range(N_COPIES):
        if r == 0:
            block = base
        else:
            rot = random_rotation(d, rng)
            block = (base64 @ rot).astype(np.float32)
        big[r * n:(r + 1) * n] = block
    big.flush()
    del big
    os.replace(tmp_p, big_p)
    print(
        f"[make_data] base-1m: ({n * N_COPIES}, {d}) = {N_COPIES} copies of the real set; copy 0 unchanged, "
        f"copies 1..{N_COPIES - 1} multiplied by seeded random orthogonal 384x384 matrices "
        f"(QR of Gaussian, seed {SEED}).\n"
        f"[make_data]   Each copy keeps the real set's geometry exactly. queries-1m = the same "
        f"{N_QUERIES} real queries, unrotated: their true neighbours are almost always in copy 0;\n"
        f"[make_data]   the rotated copies are distractors and are not guaranteed to hold near "
        f"neighbours. Use 1M for throughput; measure recall on 59k."
    )

    manifest = {
        "source": {"code": code_p, "query": query_p},
        "seed": SEED,
        "copies": N_COPIES,
        "rotation": "copy 0 identity; copy r>=1: Q of QR(standard normal 384x384), columns sign-fixed by sign(diag(R)); rows x -> x @ Q",
        "files": {k: list(v) for k, v in want.items()},
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    print(f"[make_data] done in {time.perf_counter() - t0:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
