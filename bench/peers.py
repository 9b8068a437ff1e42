#!/usr/bin/env python3
"""Peer measurements for the bitseek benchmark, on exactly the vectors bitseek sees.

Everything runs in one process, on one base .npy and one queries .npy (float32):

  * FAISS IndexBinaryFlat over centred sign codes: bit i of a code is set iff
    x_i > mean_i (mean over the base), packed with np.packbits(bitorder='little') so bit i
    of the code is dimension i (bytes = dim/8).  Batch search (default 64 queries, k=10) at
    each thread count (faiss.omp_set_num_threads), and optionally one query per call
    (batch of 1, 1 thread).
  * usearch exact search (usearch.index.search(..., exact=True), metric Hamming) over the
    same packed bytes (uint8 rows are taken as bit vectors, ScalarKind.B1), same batches,
    same thread counts.  A check reports how often its top-k Hamming distances agree with
    FAISS's.
  * Exact float inner-product search (faiss IndexFlatIP) at each thread count, for reference.
  * FAISS RaBitQ (IndexRaBitQ, METRIC_INNER_PRODUCT, query bits qb=4, trained on the base):
    recall@k of its raw ranking against the exact float inner-product top-k, with
    uncentred and centred queries, for 1 bit per dimension (and more with --rabitq-bits),
    plus recall after re-scoring the top (k x oversample) candidates with the exact float
    inner product.  The same is reported for the sign codes (Hamming ranking).
  * Single-core memory read bandwidth: np.bitwise_xor.reduce over a 1 GiB uint64 array
    (a single-threaded streaming reduction; a lower bound of what the core can read).

Timings: each configuration is run once to warm up, then --repeat times; every number
reported is the MEDIAN over the repeats (all repeats are kept in the JSON).  For each timed
pass the share of the CPUs used by other processes is recorded (from /proc/stat); runs
where it exceeded 10% are marked BUSY in the table: run on an otherwise idle machine.

Output: a table on stdout and, with --json-out, a JSON file.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

import faiss
import usearch
import usearch.index as uindex


# --------------------------------------------------------------------------- helpers

def parse_ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def sign_codes(x: np.ndarray, mean: np.ndarray, block: int = 65536) -> np.ndarray:
    """Centred sign codes, little-endian bit order: bit i of the code <=> x_i > mean_i."""
    n, d = x.shape
    out = np.empty((n, (d + 7) // 8), dtype=np.uint8)
    for i in range(0, n, block):
        out[i:i + block] = np.packbits(x[i:i + block] > mean, axis=1, bitorder="little")
    return out


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_LAST_FOREIGN: list[float] = []


def _cpu_busy_seconds() -> tuple[float, float] | None:
    """(CPU seconds used by the whole machine, CPU seconds used by this process), Linux only."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        busy = sum(v[:8]) - v[3] - v[4]            # all but idle and iowait
        t = os.times()
        return busy / _TICK, t.user + t.system
    except (OSError, ValueError, IndexError):
        return None


def time_batches(fn, queries: np.ndarray, batch: int, repeat: int) -> list[float]:
    """Seconds to push all `queries` through fn in batches of `batch`; one warm-up pass.
    Also records, per pass, the share of the machine's CPU time used by OTHER processes
    (in _LAST_FOREIGN) to flag timings disturbed by a busy machine."""
    nq = len(queries)
    batches = [np.ascontiguousarray(queries[i:i + batch]) for i in range(0, nq, batch)]
    for b in batches[: max(1, min(len(batches), 4))]:
        fn(b)
    times = []
    _LAST_FOREIGN.clear()
    ncpu = len(os.sched_getaffinity(0))
    for _ in range(repeat):
        c0 = _cpu_busy_seconds()
        t0 = time.perf_counter()
        for b in batches:
            fn(b)
        dt = time.perf_counter() - t0
        c1 = _cpu_busy_seconds()
        times.append(dt)
        if c0 and c1:
            foreign = max(0.0, (c1[0] - c0[0]) - (c1[1] - c0[1]))
            _LAST_FOREIGN.append(min(1.0, foreign / (dt * ncpu)))
    return times


def run_record(system: str, method: str, mode: str, batch: int, threads: int, nq: int,
               times: list[float], scan_bytes: int) -> dict:
    med = float(np.median(times))
    qps_all = [nq / t for t in times]
    ms_per_query = med / nq * 1e3
    return {
        "system": system,
        "method": method,
        "mode": mode,
        "batch": batch,
        "threads": threads,
        "queries": nq,
        "repeats": len(times),
        "qps_median": nq / med,
        "ms_per_query_median": ms_per_query,
        "qps_all": qps_all,
        "qps_best": max(qps_all),
        # share of all CPUs' time used by other processes during each pass (0 = quiet machine)
        "foreign_cpu_share": list(_LAST_FOREIGN),
        # bytes of database codes scanned per query / time per query (effective rate; for
        # batches the same bytes serve many queries, so this may exceed DRAM bandwidth)
        "bytes_per_second": scan_bytes / (ms_per_query / 1e3),
    }


def read_bandwidth(gib: float = 1.0, repeat: int = 7) -> dict:
    a = np.empty(int(gib * (1 << 30)) // 8, dtype=np.uint64)
    a[:] = np.arange(len(a), dtype=np.uint64)       # touch every page
    np.bitwise_xor.reduce(a)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        np.bitwise_xor.reduce(a)
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    return {
        "method": f"numpy np.bitwise_xor.reduce over a {gib:g} GiB uint64 array, 1 thread, median of {repeat}",
        "bytes": int(a.nbytes),
        "gbs_median": a.nbytes / med / 1e9,
        "gbs_all": [a.nbytes / t / 1e9 for t in times],
    }


def exact_topk(index_ip: faiss.Index, queries: np.ndarray, k: int) -> np.ndarray:
    _, ids = index_ip.search(queries, k)
    return ids


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    hits = 0
    for f, t in zip(found, truth):
        hits += len(np.intersect1d(f[:k], t[:k], assume_unique=False))
    return hits / (len(truth) * k)


def rescored_recalls(cand: np.ndarray, base: np.ndarray, queries: np.ndarray,
                     truth: np.ndarray, k: int, oversamples: list[int]) -> list[dict]:
    """cand: candidate ids sorted by the approximate score (best first), >= k*max(os) wide.
    For each oversample o, re-score the first k*o with the exact inner product, keep top k."""
    out = []
    for o in oversamples:
        m = min(k * o, cand.shape[1])
        found = np.empty((len(queries), k), dtype=np.int64)
        for i, q in enumerate(queries):
            c = cand[i, :m]
            c = c[c >= 0]
            s = base[c] @ q
            top = np.argsort(-s, kind="stable")[:k]
            found[i, :len(top)] = c[top]
            found[i, len(top):] = -1
        out.append({"oversample": o, "recall_rescored": recall_at_k(found, truth, k)})
    return out


def reach(rescored: list[dict], targets=(0.95, 0.98, 0.99)) -> dict:
    res = {}
    for t in targets:
        hit = [r["oversample"] for r in rescored if r["recall_rescored"] >= t]
        res[f"{t:.2f}"] = min(hit) if hit else None
    return res


# --------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="float32 .npy, rows = database vectors")
    ap.add_argument("--queries", required=True, help="float32 .npy, rows = queries")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--repeat", type=int, default=5, help="timed repeats (median reported), >= 5 advised")
    ap.add_argument("--nq", type=int, default=1000, help="queries used for batch timings")
    ap.add_argument("--float-nq", type=int, default=None,
                    help="queries for the exact float timing (default: --nq); lower it for 1M")
    ap.add_argument("--usearch-nq", type=int, default=None,
                    help="queries for the usearch batch timing (default: --nq); lower it for 1M")
    ap.add_argument("--single-nq", type=int, default=0,
                    help="if > 0, also time one query per call (1 thread) over this many queries")
    ap.add_argument("--no-usearch", action="store_true")
    ap.add_argument("--no-float", action="store_true")
    ap.add_argument("--recall", dest="recall", action="store_true", default=None,
                    help="measure recall (default: on when the base has <= 200k rows)")
    ap.add_argument("--no-recall", dest="recall", action="store_false")
    ap.add_argument("--rabitq-bits", default="1", help="IndexRaBitQ bits per dimension to evaluate, e.g. 1,2,4")
    ap.add_argument("--qb", type=int, default=4, help="RaBitQ query quantisation bits")
    ap.add_argument("--oversample", default="1,2,4,8,16")
    ap.add_argument("--bandwidth", dest="bandwidth", action="store_true", default=True)
    ap.add_argument("--no-bandwidth", dest="bandwidth", action="store_false")
    ap.add_argument("--label", default=None, help="name of this data set in the output")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()

    threads_list = parse_ints(args.threads)
    oversamples = parse_ints(args.oversample)
    k, B = args.k, args.batch
    faiss.omp_set_num_threads(max(threads_list))

    t_load = time.perf_counter()
    base = np.ascontiguousarray(np.load(args.base, mmap_mode="r"), dtype=np.float32)
    all_q = np.ascontiguousarray(np.load(args.queries, mmap_mode="r"), dtype=np.float32)
    n, d = base.shape
    if all_q.shape[1] != d:
        print(f"error: dim mismatch base {d} vs queries {all_q.shape[1]}", file=sys.stderr)
        return 1
    nq = min(args.nq, len(all_q))
    queries = all_q[:nq]
    label = args.label or os.path.basename(args.base)
    c0 = _cpu_busy_seconds()
    time.sleep(1.0)
    c1 = _cpu_busy_seconds()
    idle_check = None
    if c0 and c1:
        idle_check = max(0.0, (c1[0] - c0[0]) - (c1[1] - c0[1])) / len(os.sched_getaffinity(0))
        if idle_check > 0.10:
            print(f"[peers] WARNING: other processes are using {idle_check:.0%} of the CPUs; the timings "
                  f"(multi-thread ones most) will be low. Runs disturbed this way are marked BUSY.", flush=True)
    do_recall = args.recall if args.recall is not None else n <= 200_000
    print(f"[peers] {label}: base {n} x {d}, {nq} queries, k={k}, batch={B}, threads={threads_list}, "
          f"repeat={args.repeat} (medians reported); loaded in {time.perf_counter() - t_load:.1f} s",
          flush=True)

    result: dict = {
        "label": label,
        "base": os.path.abspath(args.base),
        "queries": os.path.abspath(args.queries),
        "rows": n, "dim": d, "k": k, "batch": B, "threads": threads_list, "repeat": args.repeat,
        "queries_used": nq, "loadavg_at_start": list(os.getloadavg()),
        "foreign_cpu_share_at_start": idle_check,
        "versions": {"numpy": np.__version__, "faiss": faiss.__version__, "usearch": usearch.__version__,
                     "python": platform.python_version()},
        "cpu": cpu_model(), "cpus_available": len(os.sched_getaffinity(0)),
        "timing": "each config: 1 warm-up pass, then --repeat timed passes; *_median = median over the passes",
        "runs": [], "recall": [], "checks": {},
    }

    # ---- memory bandwidth (before the big allocations of the searches are warm)
    if args.bandwidth:
        bw = read_bandwidth()
        result["read_bandwidth"] = bw
        print(f"[peers] read bandwidth {bw['gbs_median']:.1f} GB/s ({bw['method']})", flush=True)

    # ---- sign codes
    mean = base.mean(axis=0, dtype=np.float64).astype(np.float32)
    codes = sign_codes(base, mean)
    qcodes = sign_codes(all_q, mean)
    code_bytes = codes.shape[1]
    result["code_bytes"] = code_bytes
    result["sign_code"] = "bit i set iff x_i > mean_i (mean over the base); np.packbits(bitorder='little')"

    # ---- FAISS IndexBinaryFlat
    bindex = faiss.IndexBinaryFlat(d)
    bindex.add(codes)
    for t in threads_list:
        faiss.omp_set_num_threads(t)
        times = time_batches(lambda b: bindex.search(b, k), qcodes[:nq], B, args.repeat)
        r = run_record("faiss", "IndexBinaryFlat (1-bit sign, Hamming)", "batch", B, t, nq, times, n * code_bytes)
        result["runs"].append(r)
        print(f"[peers] faiss binary flat  batch {B} threads {t}: {r['qps_median']:.1f} q/s", flush=True)
    if args.single_nq > 0:
        faiss.omp_set_num_threads(1)
        sq = min(args.single_nq, len(all_q))
        times = time_batches(lambda b: bindex.search(b, k), qcodes[:sq], 1, args.repeat)
        r = run_record("faiss", "IndexBinaryFlat (1-bit sign, Hamming)", "single", 1, 1, sq, times, n * code_bytes)
        if args.bandwidth:
            floor_ms = n * code_bytes / (result["read_bandwidth"]["gbs_median"] * 1e9) * 1e3
            r["floor_ms_per_query"] = floor_ms
            # same convention as `bitseek bench`: measured time / floor (1.0 = at the memory floor)
            r["floor_ratio"] = r["ms_per_query_median"] / floor_ms
        result["runs"].append(r)
        print(f"[peers] faiss binary flat  single-query 1 thread: {r['qps_median']:.1f} q/s "
              f"({r['ms_per_query_median']:.3f} ms/query)", flush=True)

    # ---- usearch exact Hamming over the same bytes
    if not args.no_usearch:
        metric = uindex.MetricKind.Hamming
        uq = min(args.usearch_nq or nq, len(all_q))
        for t in threads_list:
            times = time_batches(
                lambda b: uindex.search(codes, b, k, metric, exact=True, threads=t), qcodes[:uq], B, args.repeat)
            r = run_record("usearch", "exact search (1-bit sign, Hamming)", "batch", B, t, uq, times, n * code_bytes)
            result["runs"].append(r)
            print(f"[peers] usearch exact      batch {B} threads {t}: {r['qps_median']:.1f} q/s", flush=True)
        if args.single_nq > 0:
            sq = min(args.single_nq, len(all_q))
            times = time_batches(
                lambda b: uindex.search(codes, b, k, metric, exact=True, threads=1), qcodes[:sq], 1, args.repeat)
            r = run_record("usearch", "exact search (1-bit sign, Hamming)", "single", 1, 1, sq, times, n * code_bytes)
            result["runs"].append(r)
            print(f"[peers] usearch exact      single-query 1 thread: {r['qps_median']:.1f} q/s", flush=True)
        # agreement check: top-k Hamming distances should be identical (ids may differ on ties)
        cq = min(nq, 200)
        faiss.omp_set_num_threads(max(threads_list))
        fd, _ = bindex.search(qcodes[:cq], k)
        um = uindex.search(codes, qcodes[:cq], k, metric, exact=True, threads=max(threads_list))
        ud = np.asarray(um.distances).reshape(cq, k)
        agree = float(np.mean(np.all(np.sort(fd, 1) == np.sort(ud, 1).astype(fd.dtype), axis=1)))
        result["checks"]["usearch_faiss_topk_hamming_distances_equal"] = agree
        print(f"[peers] check: usearch and faiss top-{k} Hamming distances equal on {agree:.1%} of {cq} queries",
              flush=True)

    # ---- exact float inner product
    findex = None
    if not args.no_float or do_recall:
        findex = faiss.IndexFlatIP(d)
        findex.add(base)
    if not args.no_float:
        fq = min(args.float_nq or nq, len(all_q))
        for t in threads_list:
            faiss.omp_set_num_threads(t)
            times = time_batches(lambda b: findex.search(b, k), all_q[:fq], B, args.repeat)
            r = run_record("faiss", "IndexFlatIP (float32, exact)", "batch", B, t, fq, times, n * d * 4)
            result["runs"].append(r)
            print(f"[peers] faiss flat IP f32  batch {B} threads {t}: {r['qps_median']:.1f} q/s ({fq} queries)",
                  flush=True)

    # ---- recall
    if do_recall:
        faiss.omp_set_num_threads(max(threads_list))
        truth = exact_topk(findex, queries, k)
        wide = k * max(oversamples)
        result["recall_truth"] = f"exact float32 inner-product top-{k} (faiss IndexFlatIP) over the same base"

        # sign codes, Hamming ranking (FAISS IndexBinaryFlat)
        _, cand = bindex.search(qcodes[:nq], wide)
        rec = {
            "system": "faiss", "method": "IndexBinaryFlat sign (Hamming)", "bits": 1,
            "bytes_per_vector": code_bytes, "recall_raw": recall_at_k(cand, truth, k),
            "rescored": rescored_recalls(cand, base, queries, truth, k, oversamples),
        }
        rec["reach"] = reach(rec["rescored"])
        result["recall"].append(rec)
        print(f"[peers] recall@{k} sign/Hamming raw {rec['recall_raw']:.4f}", flush=True)

        for nb in parse_ints(args.rabitq_bits):
            t0 = time.perf_counter()
            rq = faiss.IndexRaBitQ(d, faiss.METRIC_INNER_PRODUCT, nb)
            rq.train(base)
            rq.add(base)
            build_s = time.perf_counter() - t0
            for centered in (False, True):
                sp = faiss.RaBitQSearchParameters()
                sp.qb = args.qb
                sp.centered = centered
                t1 = time.perf_counter()
                _, cand = rq.search(queries, wide, params=sp)
                search_s = time.perf_counter() - t1
                rec = {
                    "system": "faiss", "method": "IndexRaBitQ", "bits": nb, "qb": args.qb, "centered": centered,
                    "bytes_per_vector": int(rq.code_size), "build_seconds": build_s,
                    "recall_raw": recall_at_k(cand, truth, k),
                    "rescored": rescored_recalls(cand, base, queries, truth, k, oversamples),
                    "search_seconds_k_wide": search_s,
                }
                rec["reach"] = reach(rec["rescored"])
                result["recall"].append(rec)
                print(f"[peers] recall@{k} RaBitQ {nb}-bit qb={args.qb} centered={centered}: "
                      f"raw {rec['recall_raw']:.4f}", flush=True)
            # RaBitQ batch throughput, for context (1-bit only, uncentred queries)
            if nb == 1:
                sp = faiss.RaBitQSearchParameters()
                sp.qb = args.qb
                for t in threads_list:
                    faiss.omp_set_num_threads(t)
                    times = time_batches(lambda b: rq.search(b, k, params=sp), queries, B, args.repeat)
                    r = run_record("faiss", f"IndexRaBitQ 1-bit qb={args.qb}", "batch", B, t, nq, times,
                                   n * int(rq.code_size))
                    result["runs"].append(r)
                    print(f"[peers] faiss RaBitQ 1-bit batch {B} threads {t}: {r['qps_median']:.1f} q/s",
                          flush=True)
            del rq

    print_table(result)
    result["loadavg_at_end"] = list(os.getloadavg())
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"[peers] wrote {args.json_out}")
    return 0


def print_table(res: dict) -> None:
    print()
    print(f"== peers on {res['label']}: {res['rows']:,} x {res['dim']}, k={res['k']}, "
          f"{res['cpu']}, {res['cpus_available']} CPUs")
    print(f"   numpy {res['versions']['numpy']}, faiss {res['versions']['faiss']}, "
          f"usearch {res['versions']['usearch']}; all timings are medians of {res['repeat']} repeats")
    if "read_bandwidth" in res:
        print(f"   single-core read bandwidth: {res['read_bandwidth']['gbs_median']:.1f} GB/s "
              f"(np.bitwise_xor.reduce over 1 GiB uint64)")
    hdr = f"{'system':8} {'method':40} {'mode':6} {'batch':>5} {'thr':>3} {'queries':>7} {'q/s':>10} {'ms/q':>9} {'GB/s scanned':>12}"
    print(hdr)
    print("-" * len(hdr))
    for r in res["runs"]:
        extra = f"  floor ratio {r['floor_ratio']:.2f}" if "floor_ratio" in r else ""
        busy = max(r.get("foreign_cpu_share") or [0.0])
        if busy > 0.10:
            extra += f"  [BUSY: other processes used up to {busy:.0%} of the CPUs]"
        print(f"{r['system']:8} {r['method']:40} {r['mode']:6} {r['batch']:>5} {r['threads']:>3} "
              f"{r['queries']:>7} {r['qps_median']:>10.1f} {r['ms_per_query_median']:>9.3f} "
              f"{r['bytes_per_second'] / 1e9:>12.1f}{extra}")
    if res["recall"]:
        print()
        print(f"recall@{res['k']} vs {res.get('recall_truth', 'exact')}, {res['queries_used']} queries")
        oss = [x["oversample"] for x in res["recall"][0]["rescored"]]
        hdr = (f"{'method':34} {'B/vec':>5} {'raw':>7} " + " ".join(f"{'x' + str(o):>7}" for o in oss)
               + f"  {'os@.95':>6} {'os@.98':>6} {'os@.99':>6}")
        print(hdr)
        print("-" * len(hdr))
        for r in res["recall"]:
            name = r["method"]
            if r["method"] == "IndexRaBitQ":
                name = f"RaBitQ {r['bits']}b qb={r['qb']}{' centred' if r['centered'] else ''}"
            cells = " ".join(f"{x['recall_rescored']:>7.4f}" for x in r["rescored"])
            rc = " ".join(f"{str(r['reach'][t]) if r['reach'][t] else '-':>6}" for t in ("0.95", "0.98", "0.99"))
            print(f"{name:34} {r['bytes_per_vector']:>5} {r['recall_raw']:>7.4f} {cells}  {rc}")
        print("(columns xN: recall after re-scoring the top k*N candidates with exact float32 inner product; "
              "os@R: smallest N reaching recall R)")
    if res["checks"]:
        print()
        for key, v in res["checks"].items():
            print(f"check {key}: {v:.1%}")


if __name__ == "__main__":
    sys.exit(main())
