#!/usr/bin/env python3
"""What a query's top-10 is made of once the dev base is padded to 1M rows with jittered copies, for
a few noise levels: the check behind the sigma of the 1M set in bench/README.md.

    bench/.venv-ann/bin/python bench/ann_jitter_check.py --base /tmp/ann/ann-base.npy \
        --queries /tmp/ann/ann-queries.npy --sigma 0.3,0.5

Copies follow the recipe of `crates/bitseek-index/examples/jittered.rs` (a uniformly drawn real row
plus Gaussian noise of sigma/sqrt(d) per coordinate, L2-normalised) with numpy's generator, which
records each copy's original. Prints the real set's neighbour cosines (queries to base, base rows to
their nearest other row), a copy's expected cosine to its original (1/sqrt(1 + sigma^2)), and for
each sigma: the share of copies in the exact 1M top-10, the share of top-10 rows that are a real
top-10 neighbour or a copy of one (1.0 = the neighbourhoods are the real ones), and how many
distinct real top-10 neighbours remain behind the copies.
"""
from __future__ import annotations

import argparse

import faiss
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--sigma", default="0.3,0.5")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    faiss.omp_set_num_threads(a.threads)
    b = np.load(a.base).astype(np.float32)
    q = np.load(a.queries).astype(np.float32)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    n, d = b.shape
    real = faiss.IndexFlatIP(d)
    real.add(b)
    dq, truth = real.search(q, 10)
    sample = np.random.default_rng(0).choice(n, min(n, 2000), replace=False)
    db, _ = real.search(b[sample], 11)
    print(f"queries: median cosine to their 1st / 10th real neighbour {np.median(dq[:, 0]):.3f} / "
          f"{np.median(dq[:, 9]):.3f}")
    print(f"base rows: median cosine to their nearest other row {np.median(db[:, 1]):.3f} "
          f"(10th-90th percentile {np.percentile(db[:, 1], 10):.3f}-{np.percentile(db[:, 1], 90):.3f})")
    for sigma in (float(s) for s in a.sigma.split(",")):
        rng = np.random.default_rng(1)
        src = rng.integers(0, n, a.rows - n)
        big = faiss.IndexFlatIP(d)
        big.add(b)
        for s in range(0, len(src), 100_000):
            x = b[src[s:s + 100_000]]
            x = x + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(sigma / np.sqrt(d))
            big.add(x / np.linalg.norm(x, axis=1, keepdims=True))
        _, ids = big.search(q, 10)
        orig = np.where(ids < n, ids, src[np.maximum(ids - n, 0)])
        kept = np.mean([np.isin(o, t).mean() for o, t in zip(orig, truth)])
        distinct = np.mean([len(set(o) & set(t)) for o, t in zip(orig, truth)])
        print(f"sigma {sigma}: copy-to-original cosine {1 / np.sqrt(1 + sigma * sigma):.3f}; copies in the "
              f"1M top-10 {(ids >= n).mean():.3f}; top-10 rows that are, or copy, a real top-10 neighbour "
              f"{kept:.3f}; distinct real top-10 neighbours left {distinct:.1f} of 10")


if __name__ == "__main__":
    main()
