#!/usr/bin/env python3
"""bitseek, faiss and usearch side by side from Python, on the shipped embeddings.

    pip install ./python faiss-cpu==1.15.1 usearch==2.26.6    # versions of bench/requirements.txt
    python bench/python_peers.py                               # data/demo: 2,000 functions, 200 questions
    python bench/python_peers.py --base B.npy --queries Q.npy  # any 2-D float32/float16 .npy pair

For each code at 1 bit per dimension (equal bytes per vector, codes alone, exact flat scan):
build time, batch queries/s (all queries in one call, median of --repeat) and recall@10 against
exact float cosine search. bitseek sign and faiss IndexBinaryFlat and usearch b1/hamming store
the same sign bits; bitseek rabitq and faiss IndexRaBitQ add per-vector factors to the bits.
"""

import argparse
import pathlib
import statistics
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]


def timed(f, repeat=1):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def recall(found, truth, k):
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default=str(REPO / "data/demo/rust-functions.f16.npy"))
    ap.add_argument("--queries", default=str(REPO / "data/demo/rust-docstrings.f16.npy"))
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args()

    base = np.load(a.base).astype(np.float32)
    queries = np.load(a.queries).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    n, d = base.shape
    k = a.k
    truth = np.argsort(-(queries @ base.T), axis=1, kind="stable")[:, :k]
    rows = []

    import bitseek

    for q in ["sign", "rabitq"]:
        build, index = timed(lambda: bitseek.Index.build(base, quantizer=q, keep="none"))
        secs, (ids, _) = timed(lambda: index.search(queries, k=k, rescore=False), a.repeat)
        rows.append((f"bitseek {q}", index.bytes_per_vector, build, len(queries) / secs,
                     recall(ids.astype(np.int64), truth, k)))

    import faiss

    bits = np.packbits(base > 0, axis=1)
    qbits = np.packbits(queries > 0, axis=1)

    def faiss_binary():
        ix = faiss.IndexBinaryFlat(d)
        ix.add(bits)
        return ix

    build, ix = timed(faiss_binary)
    secs, (_, ids) = timed(lambda: ix.search(qbits, k), a.repeat)
    rows.append(("faiss IndexBinaryFlat", d // 8, build, len(queries) / secs, recall(ids, truth, k)))

    if hasattr(faiss, "IndexRaBitQ"):
        def faiss_rabitq():
            ix = faiss.IndexRaBitQ(d, faiss.METRIC_INNER_PRODUCT)
            ix.train(base)
            ix.add(base)
            return ix

        build, ix = timed(faiss_rabitq)
        secs, (_, ids) = timed(lambda: ix.search(queries, k), a.repeat)
        rows.append(("faiss IndexRaBitQ", ix.code_size, build, len(queries) / secs, recall(ids, truth, k)))

    from usearch.index import Index as UIndex

    def usearch_b1():
        ix = UIndex(ndim=d, metric="hamming", dtype="b1")
        ix.add(np.arange(n), bits)
        return ix

    build, ix = timed(usearch_b1)
    secs, m = timed(lambda: ix.search(qbits, k, exact=True), a.repeat)
    rows.append(("usearch b1 hamming (exact)", d // 8, build, len(queries) / secs,
                 recall(m.keys.astype(np.int64), truth, k)))

    print(f"{n} × {d} base, {len(queries)} queries, k={k}, codes alone (no rescoring)")
    print(f"{'':28} {'B/vector':>8} {'build s':>8} {'queries/s':>10} {'recall@10':>9}")
    for name, bpv, build, qps, rec in rows:
        print(f"{name:28} {bpv:8d} {build:8.4f} {qps:10.0f} {rec:9.3f}")


if __name__ == "__main__":
    main()
