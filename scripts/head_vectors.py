#!/usr/bin/env python3
"""Glue between the pairs files and bitseek's tools, for the code-search head experiment.

  npz  PAIRS.jsonl OUT.npz             pairs.npz (arrays `query`, `doc`, float32) for training,
                                        from <stem>.query.f32.npy / <stem>.code.f32.npy (or the
                                        shipped .f16.npy) beside PAIRS.jsonl
  cap  PAIRS.jsonl N OUT.jsonl         at most N pairs per package (seeded sample, shuffled): a
                                        smaller training set that embeds faster
  eval PAIRS.jsonl Q.npy C.npy OUTDIR  OUTDIR/<stem>.jsonl plus <stem>.query.f16.npy and
                                        <stem>.code.f16.npy, which `bitseek eval-code` reads
"""
import gzip
import os
import sys
from pathlib import Path

import numpy as np


def stem(p):
    n = Path(p).name
    for s in (".gz", ".jsonl"):
        n = n[: -len(s)] if n.endswith(s) else n
    return n


def vectors(pairs, side):
    base = Path(pairs).with_name(stem(pairs))
    for suffix in (f".{side}.f32.npy", f".{side}.f16.npy"):
        p = Path(str(base) + suffix)
        if p.exists():
            return np.load(p).astype(np.float32)
    sys.exit(f"{pairs}: no {side} vectors beside it (run the embed_pairs example first)")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd = sys.argv[1]
    if cmd == "npz" and len(sys.argv) == 4:
        q, c = vectors(sys.argv[2], "query"), vectors(sys.argv[2], "code")
        np.savez(sys.argv[3], query=q, doc=c)
    elif cmd == "cap" and len(sys.argv) == 5:
        import collections, json, random

        by = collections.defaultdict(list)
        for line in open(sys.argv[2], encoding="utf-8"):
            by[json.loads(line)["package"]].append(line)
        rnd, out = random.Random(7), []
        for p in sorted(by):
            rnd.shuffle(by[p])
            out += by[p][: int(sys.argv[3])]
        rnd.shuffle(out)
        open(sys.argv[4], "w", encoding="utf-8").writelines(out)
    elif cmd == "eval" and len(sys.argv) == 6:
        pairs, qp, cp, out = sys.argv[2:]
        os.makedirs(out, exist_ok=True)
        s = stem(pairs)
        opener = gzip.open if pairs.endswith(".gz") else open
        with opener(pairs, "rt", encoding="utf-8") as f, open(Path(out) / f"{s}.jsonl", "w", encoding="utf-8") as g:
            g.write(f.read())
        np.save(Path(out) / f"{s}.query.f16.npy", np.load(qp).astype(np.float16))
        np.save(Path(out) / f"{s}.code.f16.npy", np.load(cp).astype(np.float16))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
