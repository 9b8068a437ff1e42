#!/usr/bin/env python3
"""Recall/QPS curves of bitseek's IVF and graph over RaBitQ codes next to the sub-linear peers, on
the same vectors in the same run.

    python3 -m venv bench/.venv-ann && bench/.venv-ann/bin/pip install -r bench/requirements-ann.txt
    cargo build --release -p bitseek
    bench/.venv-ann/bin/python bench/ann_curves.py --base BASE.npy --queries Q.npy [--json-out F]

Every system gets the same float32 base and queries (normalised here, so inner product = cosine),
searches with ONE thread, k = 10, and is scored by recall@10 against exact float search (FAISS
IndexFlatIP) over the same normalised base. Query speed is the median over --repeat passes of
the whole query set (after a warm-up pass), every system called the same way: one batch call
with all the queries on one thread (the peers' per-query C++ loop, no Python overhead per query;
bitseek's `search_batch_effort` through `bitseek bench --effort ...`, whose `qps_batch` this
reads; its one-query-per-call figure is kept as `qps_single`). Each point has two speeds: `qps`
from wall time and `qps_cpu` from the process's CPU time over the same passes; on a machine
other processes share, the CPU figure leaves out the time they held the core, so ratios between
systems are steadier (the table's `cpu` columns). Builds use --build-threads threads; each build
is timed by wall clock and by the CPU seconds of all its threads (`cpu s`; for bitseek, those of
the `bitseek build` child), which a loaded machine does not inflate. With --json-out the file is
rewritten after every system, so a long run (1M rows: minutes per build) that stops keeps what it
measured.

Systems (choose with --systems):
  bitseek-ivf       `bitseek build --index ivf` (1-bit RaBitQ codes centred per list, FastScan),
                    ×4 candidates rescored from the kept f32 copy; knob: --effort (lists probed)
  bitseek-ivf:KEEP  the same keeping KEEP (int8, int4, fp8) instead of f32 for the rescoring:
                    bitseek-ivf:int8 holds 1 + 8 bits per dimension, as rabitq-ivf:9
  bitseek-graph     `bitseek build --index graph --degree 32` (Vamana graph, each node block holds
                    its neighbours' 1-bit RaBitQ codes for FastScan, visited nodes ranked by the
                    kept f32 copy); knob: --effort (beam width)
  faiss-ivf-rabitq  FAISS IndexIVFRaBitQ (1 bit, qb 4) wrapped in IndexRefineFlat (k_factor 4),
                    same number of lists; knob: nprobe
  rabitq-ivf        RaBitQ library IvfIndex, 7-bit codes (1-bit FastScan code + 6 extended bits,
                    the issue's anchor), same lists and k-means; knob: nprobe
  rabitq-ivf:B      the same with B bits: 1..9 (1-bit code + B-1 extended bits), or 32 (1-bit code
                    and the raw float32 vector kept for reranking: the same bits per vector as
                    bitseek-ivf with its kept f32 copy and faiss-ivf-rabitq's IndexRefineFlat)
  symqg             RaBitQ library SymphonyQG (SymqgIndex), degree 32; knob: ef
  faiss-hnsw        FAISS IndexHNSWFlat M=32, efConstruction 200; knob: efSearch
  hnswlib           hnswlib M=16, ef_construction 200; knob: ef
  usearch           usearch HNSW, f32, connectivity 16, expansion_add 128; knob: expansion_search

For each system the table gives the build time, the bytes per vector of its saved index (what
it holds in memory: codes, graph or lists, factors and any kept vectors; bitseek's file is mapped
as it is), every curve point, and the best QPS among the points at recall >= 0.95 and >= 0.99
(none if no point reached it), and the CPU QPS interpolated to recall 0.95 exactly (`cpu=0.95`,
linear between the two points around it). On a busy machine the
absolute figures drift; compare systems within one run.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    hits = sum(len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth))
    return hits / (len(truth) * k)


def median_seconds(fn, repeat: int) -> tuple[float, float]:
    """Median wall seconds and median process CPU seconds of `repeat` calls (after a warm-up)."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    return float(np.median(wall)), float(np.median(cpu))


def curve(search, knobs, queries, truth, k, repeat):
    """search(knob) -> ids (nq × k); returns [{knob, recall, qps}]."""
    out = []
    for v in knobs:
        ids = search(v)
        r = recall(np.asarray(ids), truth, k)
        sec, cpu = median_seconds(lambda: search(v), repeat)
        out.append({"knob": v, "recall": r, "qps": len(queries) / sec, "qps_cpu": len(queries) / cpu})
        print(f"    knob {v:>5}: recall {r:.4f}  {len(queries) / sec:10.0f} q/s  {len(queries) / cpu:10.0f} q/cpu-s", flush=True)
    return out


def best_at(points, target, field="qps"):
    ok = [p[field] for p in points if p["recall"] >= target]
    return max(ok) if ok else None


def qps_at(points, target, field="qps"):
    """QPS at exactly `target` recall, interpolated linearly between the two neighbouring points
    of the curve (in knob order) that bracket it; None when the curve never reaches it. Compares
    systems whose knobs land at different recalls more fairly than the best point above."""
    pts = sorted(points, key=lambda p: p["knob"])
    for lo, hi in zip(pts, pts[1:]):
        if lo["recall"] < target <= hi["recall"]:
            t = (target - lo["recall"]) / (hi["recall"] - lo["recall"])
            return lo[field] + t * (hi[field] - lo[field])
    if pts and pts[0]["recall"] >= target:
        return pts[0][field]
    return None


def children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes, all their threads."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def saved_bytes(save, n: int) -> float:
    """Bytes per vector of the index `save(path)` writes."""
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "index")
        save(p)
        return os.path.getsize(p) / n


def run_bitseek(args, base_path, queries_path, lists, kind="ivf", keep="f32"):
    exe = args.bitseek or str(ROOT / "target" / "release" / "bitseek")
    with tempfile.TemporaryDirectory() as tmp:
        idx = os.path.join(tmp, f"{kind}.bitseek")
        shape = ["--lists", str(lists)] if kind == "ivf" else ["--degree", str(args.degree)]
        shape += ["--keep", keep]
        # Without a kept f32 copy, the curve's exact answers come from the vectors themselves.
        vectors = [] if keep == "f32" else ["--vectors", base_path]
        if kind == "graph" and args.graph_index:
            # A graph built before from the same base (its build time is not measured here).
            idx, build, build_cpu = args.graph_index, float("nan"), float("nan")
            size = os.path.getsize(idx)
            rows = np.load(base_path, mmap_mode="r").shape[0]
            info = {"file_bytes": size, "rows": rows, "graph_degree": args.degree}
        else:
            t, c = time.perf_counter(), children_cpu()
            b = subprocess.run([exe, "build", "--input", base_path, "--index", kind, *shape,
                                "--out", idx, "--json"], check=True, capture_output=True, text=True,
                               env={**os.environ, "RAYON_NUM_THREADS": str(args.build_threads)})
            build, build_cpu = time.perf_counter() - t, children_cpu() - c
            info = json.loads(b.stdout)
        efforts = args.efforts if kind == "ivf" else args.graph_efforts
        r = subprocess.run([exe, "bench", idx, "--queries", queries_path, "-k", str(args.k),
                            "--effort", ",".join(map(str, efforts)), "--threads", "1",
                            "--repeat", str(args.repeat), "--max-queries", str(args.nq),
                            "--single-queries", "1", "--no-float", *vectors, "--json"],
                           check=True, capture_output=True, text=True)
        rep = json.loads(r.stdout)
    pts = [{"knob": c["effort"], "recall": c["recall"], "qps": c["qps_batch"],
            "qps_cpu": c["qps_batch_cpu"], "qps_single": c["qps"]} for c in rep["curve"]]
    for p in pts:
        print(f"    effort {p['knob']:>5}: recall {p['recall']:.4f}  {p['qps']:10.0f} q/s  "
              f"{p['qps_cpu']:10.0f} q/cpu-s  ({p['qps_single']:.0f} q/s one per call)", flush=True)
    print(f"    build {build:.1f} s", flush=True)
    return {"build_seconds": build, "build_cpu_seconds": build_cpu, "points": pts, "lists": info.get("ivf_lists"),
            "imbalance": info.get("ivf_imbalance"), "degree": info.get("graph_degree"),
            "bytes_per_vector": info["file_bytes"] / info["rows"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--nq", type=int, default=1000, help="queries used (a prefix)")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--lists", type=int, default=0, help="IVF lists for every IVF (default 4*sqrt(rows))")
    ap.add_argument("--efforts", type=ints, default=ints("8,16,32,64,128,256"))
    ap.add_argument("--graph-efforts", type=ints, default=ints("16,24,32,48,64,96,128,256"),
                    help="beam widths of bitseek-graph")
    ap.add_argument("--degree", type=int, default=32, help="neighbours per node of bitseek-graph")
    ap.add_argument("--graph-index", help="reuse this bitseek graph index (built from the same "
                    "base with `bitseek build --index graph`) instead of building one")
    ap.add_argument("--nprobes", type=ints, default=ints("8,16,32,64,128,256"))
    ap.add_argument("--efs", type=ints, default=ints("16,32,64,128,256"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--systems", default="bitseek-graph,bitseek-ivf,faiss-ivf-rabitq,rabitq-ivf,symqg,faiss-hnsw,hnswlib,usearch")
    ap.add_argument("--bitseek", help="bitseek binary (default target/release/bitseek)")
    ap.add_argument("--json-out")
    args = ap.parse_args()

    import faiss
    base = np.load(args.base).astype(np.float32)
    queries = np.load(args.queries).astype(np.float32)[: args.nq]
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    n, d = base.shape
    k = args.k
    lists = args.lists or max(1, min(n // 32, round(4 * n ** 0.5)))
    with tempfile.TemporaryDirectory() as tmp:
        bp, qp = os.path.join(tmp, "base.npy"), os.path.join(tmp, "queries.npy")
        np.save(bp, base)
        np.save(qp, queries)
        flat = faiss.IndexFlatIP(d)
        flat.add(base)
        _, truth = flat.search(queries, k)
        del flat
        print(f"{n} × {d} base, {len(queries)} queries, k={k}, {lists} lists; load {os.getloadavg()}", flush=True)
        results = {}
        systems = args.systems.split(",")
        for s in systems:
            # A system named twice is measured twice (e.g. first and last, to see the drift of a
            # busy machine); the second gets its own row.
            key = s if s not in results else f"{s} (again)"
            print(f"== {key}", flush=True)
            faiss.omp_set_num_threads(args.build_threads)
            load = os.getloadavg()
            print(f"   {time.strftime('%H:%M:%S')}, load {load[0]:.1f}", flush=True)
            t, c = time.perf_counter(), time.process_time()
            if s.split(":")[0] in ("bitseek-ivf", "bitseek-graph"):
                kind, _, keep = s.removeprefix("bitseek-").partition(":")
                results[key] = run_bitseek(args, bp, qp, lists, kind, keep or "f32")
                results[key]["load_before"] = load[0]
                save_json(args, n, d, lists, len(queries), results)
                continue
            if s == "faiss-ivf-rabitq":
                quant = faiss.IndexFlatIP(d)
                ivf = faiss.IndexIVFRaBitQ(quant, d, lists, faiss.METRIC_INNER_PRODUCT)
                index = faiss.IndexRefineFlat(ivf)
                index.k_factor = 4
                index.train(base)
                index.add(base)
                build, build_cpu = time.perf_counter() - t, time.process_time() - c
                faiss.omp_set_num_threads(1)

                def search(v, index=index, ivf=ivf):
                    ivf.nprobe = v
                    return index.search(queries, k)[1]
                knobs = args.nprobes
            elif s == "rabitq-ivf" or s.startswith("rabitq-ivf:"):
                import rabitqlib
                nbits = int(s.split(":")[1]) if ":" in s else 7
                km = faiss.Kmeans(d, lists, niter=10, seed=1)
                km.train(base)
                _, assign = km.index.search(base, 1)
                index = rabitqlib.IvfIndex(d, n, lists, nbits, "l2")
                index.build(base, km.centroids, assign.ravel().astype(np.uint32), args.build_threads)
                build, build_cpu = time.perf_counter() - t, time.process_time() - c

                def search(v, index=index):
                    return np.asarray(index.search(queries, k, v, num_threads=1)[0])
                knobs = args.nprobes
            elif s == "symqg":
                import rabitqlib
                index = rabitqlib.SymqgIndex(d, 32, "l2")
                index.build(base, 200, args.build_threads)
                build, build_cpu = time.perf_counter() - t, time.process_time() - c

                def search(v, index=index):
                    return np.asarray(index.search(queries, k, max(v, k), num_threads=1)[0])
                knobs = args.efs
            elif s == "faiss-hnsw":
                index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
                index.hnsw.efConstruction = 200
                index.add(base)
                build, build_cpu = time.perf_counter() - t, time.process_time() - c
                faiss.omp_set_num_threads(1)

                def search(v, index=index):
                    index.hnsw.efSearch = v
                    return index.search(queries, k)[1]
                knobs = args.efs
            elif s == "hnswlib":
                import hnswlib
                index = hnswlib.Index(space="ip", dim=d)
                index.init_index(max_elements=n, M=16, ef_construction=200)
                index.add_items(base, num_threads=args.build_threads)
                build, build_cpu = time.perf_counter() - t, time.process_time() - c
                index.set_num_threads(1)

                def search(v, index=index):
                    index.set_ef(max(v, k))
                    return index.knn_query(queries, k=k, num_threads=1)[0]
                knobs = args.efs
            elif s == "usearch":
                from usearch.index import Index
                index = Index(ndim=d, metric="ip", dtype="f32", connectivity=16, expansion_add=128)
                index.add(np.arange(n), base, threads=args.build_threads)
                build, build_cpu = time.perf_counter() - t, time.process_time() - c

                def search(v, index=index):
                    index.expansion_search = v
                    return index.search(queries, k, threads=1).keys
                knobs = args.efs
            else:
                print(f"unknown system {s}", file=sys.stderr)
                return 2
            if s.startswith("faiss"):
                bpv = saved_bytes(lambda p: faiss.write_index(index, p), n)
            elif s == "hnswlib":
                bpv = saved_bytes(index.save_index, n)
            else:
                bpv = saved_bytes(index.save, n)
            print(f"    build {build:.1f} s, {bpv:.0f} bytes/vector", flush=True)
            results[key] = {"build_seconds": build, "build_cpu_seconds": build_cpu, "bytes_per_vector": bpv,
                            "points": curve(search, knobs, queries, truth, k, args.repeat), "load_before": load[0]}
            del index
            save_json(args, n, d, lists, len(queries), results)

    print(f"\nload after: {os.getloadavg()}")
    print(f"{'system':<18} {'build s':>8} {'cpu s':>8} {'B/vec':>6} {'QPS@0.95':>10} {'QPS@0.99':>10} {'cpu@0.95':>10} {'cpu@0.99':>10} {'cpu=0.95':>10}   curve (knob: recall / q/s)")
    nan = float("nan")
    for s, r in results.items():
        b95, b99 = best_at(r["points"], 0.95), best_at(r["points"], 0.99)
        c95, c99 = best_at(r["points"], 0.95, "qps_cpu"), best_at(r["points"], 0.99, "qps_cpu")
        # "cpu=0.95": CPU QPS interpolated to recall 0.95 exactly.
        r["qps_cpu_at_095"] = i95 = qps_at(r["points"], 0.95, "qps_cpu")
        pts = "  ".join(f"{p['knob']}: {p['recall']:.3f}/{p['qps']:.0f}" for p in r["points"])
        print(f"{s:<18} {r['build_seconds']:>8.1f} {r['build_cpu_seconds']:>8.1f} {r['bytes_per_vector']:>6.0f} {b95 or nan:>10.0f} {b99 or nan:>10.0f} {c95 or nan:>10.0f} {c99 or nan:>10.0f} {i95 or nan:>10.0f}   {pts}")
    save_json(args, n, d, lists, len(queries), results)
    return 0


def save_json(args, n, d, lists, nq, results) -> None:
    """Written after every system too, so a long run that stops keeps what it measured."""
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"rows": n, "dim": d, "k": args.k, "lists": lists,
                                                   "queries": nq, "results": results}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
