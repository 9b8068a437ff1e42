#!/usr/bin/env python3
"""Combine bitseek's and the peers' JSON results (written by run.sh) into one table.

Usage: report.py RESULTS_DIR [--json-out FILE]

Expected files in RESULTS_DIR (any may be missing; missing cells print as "n/a"):
  peers-59k.json, peers-1m.json                     peers.py --json-out
  bitseek-bench-59k.json, bitseek-bench-1m.json     bitseek bench ... --json
  bitseek-build-<set>-<quantizer>.json              bitseek build ... --json
  bitseek-eval-59k-<quantizer>.json                 bitseek eval ... --json
"""
from __future__ import annotations

import argparse
import json
import os
import sys

QUANTIZERS = ["sign", "rabitq", "residual2", "residual3", "residual4", "int8"]
TARGETS = ("0.95", "0.98", "0.99")


def load(d: str, name: str):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        text = f.read().strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        # tolerate a tool that prints more than one line: take the last JSON line
        for line in reversed(text.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    continue
        print(f"[report] warning: {p} is not JSON", file=sys.stderr)
        return None


def fmt(x, spec=".1f", na="n/a"):
    if x is None:
        return na
    return format(x, spec)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def peer_run(peers, system, method_prefix, mode, threads, batch=None):
    if not peers:
        return None
    for r in peers["runs"]:
        if (r["system"] == system and r["method"].startswith(method_prefix) and r["mode"] == mode
                and r["threads"] == threads and (batch is None or r["batch"] == batch)):
            return r
    return None


def bitseek_run(bench, mode, threads, batch=None):
    if not bench:
        return None
    for r in bench.get("runs", []):
        if r.get("mode") == mode and r.get("threads") == threads and (batch is None or r.get("batch") == batch):
            return r
    return None


def bitseek_float(bench, threads, batch=None):
    if not bench:
        return None
    for r in bench.get("float", []) or []:
        if r.get("threads") == threads and (batch is None or r.get("batch") == batch) and r.get("mode", "batch") == "batch":
            return r
    return None


def reach_from_results(results, k_targets=TARGETS):
    out = {}
    for t in k_targets:
        hit = [r["oversample"] for r in results if r.get("recall_rescored") is not None
               and r["recall_rescored"] >= float(t)]
        out[t] = min(hit) if hit else None
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    d = args.results
    B = args.batch
    threads = [int(t) for t in args.threads.split(",")]

    peers = {s: load(d, f"peers-{s}.json") for s in ("59k", "1m")}
    bench = {s: load(d, f"bitseek-bench-{s}.json") for s in ("59k", "1m")}
    evals = {q: load(d, f"bitseek-eval-59k-{q}.json") for q in QUANTIZERS}
    builds = {q: load(d, f"bitseek-build-59k-{q}.json") for q in QUANTIZERS}
    combined = {"throughput": [], "single": [], "recall": [], "peer_recall": []}

    any_p = peers["59k"] or peers["1m"]
    print()
    print("=" * 100)
    print("bitseek vs peers: same base/query files, same sign codes (bit i = x_i > mean_i), k=10")
    rep = (any_p or {}).get("repeat") or next((b.get("repeat") for b in bench.values() if b and b.get("repeat")), None)
    print(f"Every timing is the MEDIAN over repeated runs ({rep if rep else 'several'} timed repeats after a warm-up; "
          f"all repeats are in the JSON files).")
    if any_p:
        v = any_p["versions"]
        print(f"Peers: faiss-cpu {v['faiss']}, usearch {v['usearch']}, numpy {v['numpy']}; CPU: {any_p['cpu']}, "
              f"{any_p['cpus_available']} CPUs available")
    busy = [(s, r["system"], r["method"].split(" (")[0], r["mode"], r["threads"], max(r.get("foreign_cpu_share") or [0]))
            for s, p in peers.items() if p for r in p["runs"]]
    busy = [b for b in busy if b[-1] > 0.10]
    if busy:
        print(f"WARNING: the machine was busy: other processes used > 10% of the CPUs during {len(busy)} peer "
              f"runs (marked BUSY in peers-*.txt); bitseek's runs were probably disturbed too. Rerun on an idle machine.")
    print("=" * 100)

    # ---- 1. flat 1-bit throughput
    print()
    print(f"1) Flat 1-bit (sign/Hamming) scan, batch {B}, k=10: queries/second (median)")
    hdr = (f"{'set':5} {'rows':>10} {'thr':>3} {'bitseek':>10} {'FAISS BinFlat':>14} {'ratio':>6} "
           f"{'usearch exact':>14} {'ratio':>6} {'bitseek f32':>11} {'FAISS f32':>10}")
    print(hdr)
    print("-" * len(hdr))
    for s in ("59k", "1m"):
        p, b = peers[s], bench[s]
        rows = (p or {}).get("rows") or (b or {}).get("rows")
        if p and b and b.get("rows") not in (None, p["rows"]):
            print(f"WARNING: {s}: bitseek reports {b['rows']} rows, peers {p['rows']}")
        for t in threads:
            bs = bitseek_run(b, "batch", t, B)
            fa = peer_run(p, "faiss", "IndexBinaryFlat", "batch", t, B)
            us = peer_run(p, "usearch", "exact", "batch", t, B)
            bf = bitseek_float(b, t, B)
            ff = peer_run(p, "faiss", "IndexFlatIP", "batch", t, B)
            bq, fq, uq = (bs or {}).get("qps_median"), (fa or {}).get("qps_median"), (us or {}).get("qps_median")
            print(f"{s:5} {fmt(rows, ',') if rows else 'n/a':>10} {t:>3} {fmt(bq):>10} {fmt(fq):>14} "
                  f"{fmt(ratio(bq, fq), '.2f'):>6} {fmt(uq):>14} {fmt(ratio(bq, uq), '.2f'):>6} "
                  f"{fmt((bf or {}).get('qps_median')):>11} {fmt((ff or {}).get('qps_median')):>10}")
            combined["throughput"].append({
                "set": s, "rows": rows, "batch": B, "threads": t,
                "bitseek_qps": bq, "faiss_binary_flat_qps": fq, "usearch_exact_qps": uq,
                "ratio_vs_faiss": ratio(bq, fq), "ratio_vs_usearch": ratio(bq, uq),
                "bitseek_float_qps": (bf or {}).get("qps_median"), "faiss_flat_ip_qps": (ff or {}).get("qps_median"),
            })
    print("(ratio = bitseek / peer; f32 = exact float32 inner-product scan for reference; "
          "query counts per run are in the JSON files)")

    # ---- 2. single query over 1M
    print()
    print("2) One query per call, 1 thread, flat 1-bit over the 1M set")
    b, p = bench["1m"], peers["1m"]
    bs = bitseek_run(b, "single", 1)
    fa = peer_run(p, "faiss", "IndexBinaryFlat", "single", 1)
    us = peer_run(p, "usearch", "exact", "single", 1)
    hdr = f"{'system':22} {'q/s':>9} {'ms/query':>9} {'GB/s':>6} {'floor ms':>9} {'floor ratio':>11}"
    print(hdr)
    print("-" * len(hdr))
    if b:
        print(f"{'bitseek':22} {fmt((bs or {}).get('qps_median')):>9} {fmt((bs or {}).get('ms_per_query_median'), '.3f'):>9} "
              f"{fmt(((bs or {}).get('bytes_per_second') or 0) / 1e9 if bs and bs.get('bytes_per_second') else None):>6} "
              f"{fmt(b.get('floor_ms_per_query'), '.3f'):>9} {fmt((bs or {}).get('floor_ratio'), '.2f'):>11}")
    else:
        print(f"{'bitseek':22} {'n/a':>9}")
    bw_b = (b or {}).get("read_bandwidth_gbs")
    bw_p = ((p or {}).get("read_bandwidth") or {}).get("gbs_median")
    bw_used = bw_b or bw_p   # one bandwidth for every floor in this table: bitseek's if it reported one
    for name, r in (("FAISS IndexBinaryFlat", fa), ("usearch exact", us)):
        floor = ratio_ = None
        if r and bw_used and p:
            floor = p["rows"] * p["code_bytes"] / (bw_used * 1e9) * 1e3
            ratio_ = r["ms_per_query_median"] / floor
            r = dict(r, floor_ms_per_query=floor, floor_ratio=ratio_)
        print(f"{name:22} {fmt((r or {}).get('qps_median')):>9} {fmt((r or {}).get('ms_per_query_median'), '.3f'):>9} "
              f"{fmt((r or {}).get('bytes_per_second', 0) / 1e9 if r else None):>6} "
              f"{fmt(floor, '.3f'):>9} {fmt(ratio_, '.2f'):>11}")
    bw_src = "bitseek's" if bw_b else "the peers'"
    print(f"(floor = code bytes / single-core read bandwidth; floor ratio = measured time / floor: 1.0 = at the "
          f"memory floor, 2.0 = twice as slow.\n Peer floors use {bw_src} bandwidth. Bandwidth: bitseek's own "
          f"measurement {fmt(bw_b)} GB/s; peers' numpy bitwise_xor.reduce, 1 GiB, {fmt(bw_p)} GB/s)")
    combined["single"] = {"bitseek": bs, "bitseek_floor_ms": (b or {}).get("floor_ms_per_query"),
                          "bitseek_read_bandwidth_gbs": bw_b, "faiss": fa, "usearch": us,
                          "peers_read_bandwidth_gbs": bw_p, "floor_bandwidth_used_gbs": bw_used}

    # ---- 3. recall
    print()
    p = peers["59k"]
    nq = (p or {}).get("queries_used")
    print(f"3) recall@10 on the 59k set vs exact float32 inner-product top-10"
          f"{f' ({nq} queries)' if nq else ''}; oversampling = re-score top k*N with f32")
    hdr = (f"{'system / quantizer':30} {'B/vec':>6} {'raw':>7} {'N@0.95':>7} {'N@0.98':>7} {'N@0.99':>7}"
           f" {'build s':>8}")
    print(hdr)
    print("-" * len(hdr))
    for q in QUANTIZERS:
        e, bl = evals[q], builds[q]
        if e:
            res = e.get("results", [])
            raw = next((r.get("recall_raw") for r in res if r.get("oversample") == 1), None)
            if raw is None and res:
                raw = res[0].get("recall_raw")
            rc = reach_from_results(res)
            bpv = e.get("bytes_per_vector")
        else:
            raw, rc, bpv = None, {t: None for t in TARGETS}, (bl or {}).get("bytes_per_vector")
        print(f"{'bitseek ' + q:30} {fmt(bpv, 'd') if isinstance(bpv, int) else fmt(bpv, '.1f'):>6} "
              f"{fmt(raw, '.4f'):>7} " + " ".join(f"{fmt(rc[t], 'd', '-') if e else 'n/a':>7}" for t in TARGETS)
              + f" {fmt((bl or {}).get('build_seconds'), '.2f'):>8}")
        combined["recall"].append({"quantizer": q, "bytes_per_vector": bpv, "recall_raw": raw, "reach": rc,
                                   "build_seconds": (bl or {}).get("build_seconds"),
                                   "results": (e or {}).get("results")})
    for r in (p or {}).get("recall", []):
        if r["method"] == "IndexRaBitQ":
            name = f"FAISS RaBitQ {r['bits']}b qb={r['qb']}{' centred' if r['centered'] else ''}"
        else:
            name = "FAISS sign/Hamming"
        print(f"{name:30} {r['bytes_per_vector']:>6} {r['recall_raw']:>7.4f} "
              + " ".join(f"{fmt(r['reach'][t], 'd', '-'):>7}" for t in TARGETS)
              + f" {fmt(r.get('build_seconds'), '.2f'):>8}")
        combined["peer_recall"].append(r)
    print("(N@R: smallest oversampling N in {1,2,4,8,16} whose f32-rescored recall@10 reaches R; '-' = not reached)")
    print()

    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(combined, f, indent=2)
        print(f"[report] wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
