"""bitseek.ray on one machine: build time at 1, 2 and 4 shards, and search queries/s with p50/p99
latency for one query per call and batches of 64, next to one collection searched in this process
(no Ray), which is the fan-out's baseline. Rounds alternate between the configurations and the
figures are medians over rounds, so the ratios hold on a shared machine; the absolute numbers do
not travel.

    pip install "./python[ray]"
    python bench/ray_bench.py --base bench/data/base-1m.f32.npy --queries bench/data/queries-1k.f32.npy
    python bench/ray_bench.py --base bench/data/base-59k.f32.npy --queries bench/data/queries-1k.f32.npy

(bench/data is made by bench/make_data.py, see bench/README.md.)
"""

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time

import numpy as np


def percentile(xs, p):
    return float(np.percentile(np.asarray(xs), p))


def timed_calls(search, queries, per_call, calls):
    """Runs `calls` searches of `per_call` queries; returns (queries/s, p50 ms, p99 ms)."""
    lat = []
    start = time.perf_counter()
    for i in range(calls):
        j = (i * per_call) % (len(queries) - per_call + 1)
        t = time.perf_counter()
        search(queries[j : j + per_call])
        lat.append((time.perf_counter() - t) * 1e3)
    total = time.perf_counter() - start
    return calls * per_call / total, percentile(lat, 50), percentile(lat, 99)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help=".npy of float32 vectors")
    ap.add_argument("--queries", required=True, help=".npy of float32 queries")
    ap.add_argument("--shards", default="1,2,4")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--single-calls", type=int, default=200, help="one-query calls per round")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batch-calls", type=int, default=16, help="batch calls per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--recall-queries", type=int, default=200,
                    help="queries whose recall@k against exact cosine search is reported")
    ap.add_argument("--work", default=None, help="directory for the indexes (default: a temp dir)")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()

    import ray

    import bitseek
    import bitseek.ray as bray

    base = np.load(args.base, mmap_mode="r")
    queries = np.ascontiguousarray(np.load(args.queries), dtype=np.float32)
    shard_counts = [int(s) for s in args.shards.split(",")]
    work = args.work or tempfile.mkdtemp(prefix="bitseek-ray-bench-")
    os.makedirs(work, exist_ok=True)
    out = {"base": args.base, "rows": int(base.shape[0]), "dim": int(base.shape[1]),
           "cpus": os.cpu_count(), "load_before": os.getloadavg(), "build_s": {}, "search": {}}
    ray.init(num_cpus=2 * sum(shard_counts) + 2, include_dashboard=False, log_to_driver=False)

    # The baseline: one collection of every point, in this process.
    t = time.perf_counter()
    db = bitseek.Db(os.path.join(work, "local"))
    local = db.create_collection("c", int(base.shape[1]))
    for s in range(0, len(base), 16384):
        chunk = np.ascontiguousarray(base[s : s + 16384], dtype=np.float32)
        local.upsert(np.arange(s, s + len(chunk), dtype=np.uint64), chunk)
    local.compact()
    out["build_s"]["local"] = time.perf_counter() - t
    print(f"build local (one collection, no Ray): {out['build_s']['local']:.1f} s", flush=True)

    indexes = {}
    for n in shard_counts:
        uri = os.path.join(work, f"shards-{n}")
        t = time.perf_counter()
        bray.build(np.asarray(base, dtype=np.float32), uri, shards=n)
        out["build_s"][f"{n} shards"] = time.perf_counter() - t
        print(f"build {n} shards: {out['build_s'][f'{n} shards']:.1f} s", flush=True)
        indexes[f"{n} shards"] = bray.ShardedIndex(uri)

    configs = {"local": lambda q: local.search(q, k=args.k)}
    for name, idx in indexes.items():
        configs[name] = lambda q, idx=idx: idx.search(q, k=args.k)
    for search in configs.values():  # warm up: first calls open and map files
        search(queries[: args.batch])
    # Recall@k against exact cosine search (numpy, in chunks of the base).
    nq = min(args.recall_queries, len(queries))
    qn = queries[:nq] / np.linalg.norm(queries[:nq], axis=1, keepdims=True)
    best = np.full((nq, args.k), -np.inf, dtype=np.float32)
    best_ids = np.zeros((nq, args.k), dtype=np.int64)
    for s in range(0, len(base), 65536):
        chunk = np.asarray(base[s : s + 65536], dtype=np.float32)
        sims = qn @ (chunk / np.linalg.norm(chunk, axis=1, keepdims=True)).T
        allsims = np.concatenate([best, sims], axis=1)
        allids = np.concatenate([best_ids, np.arange(s, s + len(chunk))[None].repeat(nq, 0)], 1)
        top = np.argsort(-allsims, axis=1, kind="stable")[:, : args.k]
        best = np.take_along_axis(allsims, top, 1)
        best_ids = np.take_along_axis(allids, top, 1)
    out["recall"] = {}
    for c, search in configs.items():
        got = np.asarray(search(queries[:nq])[0], dtype=np.int64)
        out["recall"][c] = float(np.mean([len(set(got[r]) & set(best_ids[r])) / args.k
                                          for r in range(nq)]))
    print("recall@%d: " % args.k + ", ".join(f"{c} {v:.3f}" for c, v in out["recall"].items()),
          flush=True)
    modes = {"1 query": (1, args.single_calls), f"batch {args.batch}": (args.batch, args.batch_calls)}
    runs = {(m, c): [] for m in modes for c in configs}
    for r in range(args.rounds):  # alternate the configurations within each round
        for m, (per_call, calls) in modes.items():
            for c, search in configs.items():
                runs[(m, c)].append(timed_calls(search, queries, per_call, calls))
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    for (m, c), rs in runs.items():
        qps, p50, p99 = (statistics.median(x[i] for x in rs) for i in range(3))
        out["search"].setdefault(m, {})[c] = {"qps": qps, "p50_ms": p50, "p99_ms": p99,
                                             "rounds": rs}
    out["load_after"] = os.getloadavg()

    print(f"\n{out['rows']} x {out['dim']}, k={args.k}, {os.cpu_count()} cpus, "
          f"load {out['load_before'][0]:.1f} -> {out['load_after'][0]:.1f}")
    print("build: " + ", ".join(f"{k} {v:.1f} s" for k, v in out["build_s"].items()))
    for m, cs in out["search"].items():
        lq = cs["local"]["qps"]
        for c, v in cs.items():
            print(f"{m:>9} {c:>9}: {v['qps']:9.1f} q/s  p50 {v['p50_ms']:7.2f} ms  "
                  f"p99 {v['p99_ms']:7.2f} ms  ({v['qps'] / lq:.2f}x local q/s)")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=1)
    for idx in indexes.values():
        idx.close()
    ray.shutdown()
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
