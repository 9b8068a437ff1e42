#!/usr/bin/env python3
"""What the Python binding costs: `bitseek.Index.search` against `bitseek bench` on the same index
file and queries, and two Python threads against one.

    python bench/python_bench.py                       # 200k × 384 random vectors, rabitq
    python bench/python_bench.py --rows 50000 --json out.json

Needs `pip install ./python` and the CLI (target/release/bitseek, or --bitseek). Both sides run
the same search: k=10, codes alone (no rescoring, as `bitseek bench` measures), one thread, batches
of 64 queries and single queries, median of --repeat timed passes after a warm-up.
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import tempfile
import threading
import time

import numpy as np

import bitseek

REPO = pathlib.Path(__file__).resolve().parents[1]


def median_seconds(repeat, f):
    f()  # warm-up: page in the mapping, start the pool
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--quantizer", default="rabitq")
    ap.add_argument("--queries", type=int, default=1024)
    ap.add_argument("--single", type=int, default=100, help="queries timed one at a time")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--bitseek", default=str(REPO / "target" / "release" / "bitseek"))
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((a.rows, a.dim), dtype=np.float32)
    queries = rng.standard_normal((a.queries, a.dim), dtype=np.float32)
    tmp = pathlib.Path(tempfile.mkdtemp())
    index = bitseek.Index.build(vectors, quantizer=a.quantizer)
    index.save(tmp / "v.bitseek")
    np.save(tmp / "q.npy", queries)
    index = bitseek.Index.open(tmp / "v.bitseek")

    cli = json.loads(subprocess.run(
        [a.bitseek, "bench", tmp / "v.bitseek", "--queries", tmp / "q.npy", "-k", "10",
         "--threads", "1", "--no-float", "--repeat", str(a.repeat), "--batch", str(a.batch),
         "--max-queries", str(a.queries), "--single-queries", str(a.single), "--json"],
        check=True, capture_output=True, text=True).stdout)
    cli_ms = {r["mode"]: r["ms_per_query_median"] for r in cli["runs"] if r["threads"] == 1}

    def batches():
        for s in range(0, a.queries, a.batch):
            index.search(queries[s:s + a.batch], k=10, rescore=False, threads=1)

    singles = [queries[i:i + 1] for i in range(a.single)]

    def one_at_a_time():
        for q in singles:
            index.search(q, k=10, rescore=False, threads=1)

    py_batch_ms = median_seconds(a.repeat, batches) / a.queries * 1e3
    py_single_ms = median_seconds(a.repeat, one_at_a_time) / a.single * 1e3

    def two_threads(work):
        ts = [threading.Thread(target=work) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    one = median_seconds(a.repeat, batches)
    two = median_seconds(a.repeat, lambda: two_threads(batches))
    one_s = median_seconds(a.repeat, one_at_a_time)
    two_s = median_seconds(a.repeat, lambda: two_threads(one_at_a_time))
    result = {
        "rows": a.rows, "dim": a.dim, "quantizer": index.quantizer,
        "bytes_per_vector": index.bytes_per_vector, "kernels": cli["kernels"],
        "cli_batch_ms_per_query": cli_ms["batch"], "python_batch_ms_per_query": py_batch_ms,
        "batch_overhead_pct": (py_batch_ms / cli_ms["batch"] - 1) * 100,
        "cli_single_ms_per_query": cli_ms["single"], "python_single_ms_per_query": py_single_ms,
        "single_overhead_us": (py_single_ms - cli_ms["single"]) * 1e3,
        "two_threads_speedup_batch": 2 * one / two,
        "two_threads_speedup_single": 2 * one_s / two_s,
    }
    print(f"{a.rows} × {a.dim} {index.quantizer} ({index.bytes_per_vector} B/vector), k=10, codes alone, threads=1")
    print(f"  batch of {a.batch}: CLI {cli_ms['batch']:.4f} ms/query, Python {py_batch_ms:.4f} ms/query "
          f"({result['batch_overhead_pct']:+.1f}%)")
    print(f"  single query: CLI {cli_ms['single']:.4f} ms, Python {py_single_ms:.4f} ms "
          f"({result['single_overhead_us']:+.1f} µs per call)")
    print(f"  two Python threads vs one: {result['two_threads_speedup_batch']:.2f}× (batches), "
          f"{result['two_threads_speedup_single']:.2f}× (single queries)")
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
