#!/usr/bin/env python3
"""Paired comparison of the model as shipped against the model + a code head on one pairs file,
with the uncertainty `bitseek eval-code` does not report: per-query reciprocal ranks (whole pool,
ties count against, as eval-code ranks float32), their mean for both, a 95% bootstrap interval of
the MRR difference over queries, and the MRR per package.

    python scripts/head_paired.py HEAD.safetensors PAIRS.jsonl

PAIRS.jsonl needs <stem>.query.f16.npy and <stem>.code.f16.npy beside it (`head_vectors.py eval`
writes them). The head is applied as bitseek applies it (`encoder.rs`):
normalise(x + W2·relu(W1·x + b1) + b2), `query.*` for questions and `doc.*` for code.
"""
import json
import struct
import sys
from collections import defaultdict

import numpy as np


def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header, data = json.loads(raw[8 : 8 + n]), raw[8 + n :]

    def get(name):
        h = header[name]
        a, b = h["data_offsets"]
        dtype = {"F16": np.float16, "F32": np.float32}[h["dtype"]]
        return np.frombuffer(data[a:b], dtype=dtype).astype(np.float32).reshape(h["shape"])

    return get


def normalise(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def tower(t, side, x):
    h = np.maximum(x @ t(f"{side}.w1").T + t(f"{side}.b1"), 0)
    return normalise(x + h @ t(f"{side}.w2").T + t(f"{side}.b2"))


def reciprocal_ranks(q, c):
    s = q @ c.T
    return 1.0 / (s >= np.diag(s)[:, None]).sum(1)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    head, pairs = sys.argv[1:]
    stem = pairs[: -len(".jsonl")] if pairs.endswith(".jsonl") else sys.exit(f"{pairs}: expected a .jsonl file")
    t = tensors(head)
    q = normalise(np.load(stem + ".query.f16.npy").astype(np.float32))
    c = normalise(np.load(stem + ".code.f16.npy").astype(np.float32))
    rows = [json.loads(l) for l in open(pairs, encoding="utf-8")]
    a, b = reciprocal_ranks(q, c), reciprocal_ranks(tower(t, "query", q), tower(t, "doc", c))
    nf = np.array([not r["name_in_query"] for r in rows])
    print(f"{pairs}: {len(rows)} queries; MRR model {a.mean():.4f}, with head {b.mean():.4f} "
          f"({100 * (b.mean() / a.mean() - 1):+.1f}%); name-free {a[nf].mean():.4f} -> {b[nf].mean():.4f}")
    d = b - a
    rng = np.random.default_rng(0)
    boots = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(2000)]
    lo, hi = np.percentile(boots, [2.5, 97.5])
    print(f"  MRR difference {d.mean():+.4f}, 95% bootstrap interval over queries [{lo:+.4f}, {hi:+.4f}]")
    by = defaultdict(list)
    for i, r in enumerate(rows):
        by[r["package"]].append(i)
    for p, ix in sorted(by.items()):
        print(f"  {p}: {len(ix)} queries, MRR {a[ix].mean():.3f} -> {b[ix].mean():.3f}")


if __name__ == "__main__":
    main()
