#!/usr/bin/env python3
"""The table of bench/head_ablation.sh: mean ± sd over seeds of each row's runs.

  head_ablation_table.py RUNS.jsonl                  markdown table on stdout
  head_ablation_table.py RUNS.jsonl --best-of A B..  the row among A B.. with the highest mean
                                                     validation MRR (both languages averaged)
  head_ablation_table.py RUNS.jsonl --fused F.jsonl  the test MRR through `bitseek eval-code`,
                                                     semantic and fused (head_ablation_fused.sh)
"""
import json
import statistics
import sys


def load(path):
    rows, seen = {}, set()
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        if (r["row"], r["seed"]) in seen:
            continue  # a run repeated by two concurrent invocations: the first counts
        seen.add((r["row"], r["seed"]))
        rows.setdefault(r["row"], []).append(r["result"])
    return rows


def val(result):
    return (result["val_python"]["mrr"] + result["val_rust"]["mrr"]) / 2


def fmt(xs, digits=4):
    m = statistics.mean(xs)
    if len(xs) < 2:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {statistics.stdev(xs):.{digits}f}"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rows = load(sys.argv[1])
    if len(sys.argv) > 3 and sys.argv[2] == "--best-of":
        have = [r for r in sys.argv[3:] if r in rows]
        if not have:
            sys.exit("no runs of " + " ".join(sys.argv[3:]) + " yet; run those rows first")
        print(max(have, key=lambda r: statistics.mean(val(x) for x in rows[r])))
        return
    if len(sys.argv) == 4 and sys.argv[2] == "--fused":
        fused = {}
        for line in open(sys.argv[3], encoding="utf-8"):
            r = json.loads(line)
            fused.setdefault(r["row"], []).append(r)
        sets = [(f"{s} {n}", f"{k}{l}") for s, k in (("val", "val_"), ("test", "")) for n, l in (("Py", "python"), ("Rust", "rust"))]
        print("| row | seeds | " + " | ".join(f"{n} semantic | {n} fused" for n, _ in sets) + " |")
        print("|---|---:|" + "---:|" * (2 * len(sets)))
        for name, runs in fused.items():
            cells = [fmt([r[l][k] for r in runs]) for _, l in sets for k in ("semantic", "fused")]
            print(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
        return
    cols = [
        ("val Py MRR", lambda r: r["val_python"]["mrr"]),
        ("val Rust MRR", lambda r: r["val_rust"]["mrr"]),
        ("test Py MRR", lambda r: r["test_python"]["mrr"]),
        ("test Py R@1", lambda r: r["test_python"]["r1"]),
        ("test Py R@10", lambda r: r["test_python"]["r10"]),
        ("test Rust MRR", lambda r: r["test_rust"]["mrr"]),
        ("test Rust R@1", lambda r: r["test_rust"]["r1"]),
        ("test Rust R@10", lambda r: r["test_rust"]["r10"]),
    ]
    print("| row | seeds | " + " | ".join(c for c, _ in cols) + " | best epoch | s/run |")
    print("|---|---:|" + "---:|" * (len(cols) + 2))
    for name, runs in rows.items():
        cells = [fmt([g(r) for r in runs]) for _, g in cols]
        epochs = "/".join(str(r["best_epoch"]) for r in runs)
        secs = statistics.median(r["seconds"] for r in runs)
        print(f"| {name} | {len(runs)} | " + " | ".join(cells) + f" | {epochs} | {secs:.0f} |")
    if "plain" not in rows:
        return
    # Against plain training on validation: the difference of the means and Welch's t (the
    # difference over its standard error from the seeds); |t| < 2 is within seed noise.
    print()
    print("| row | Δ val Py MRR vs plain (t) | Δ val Rust MRR vs plain (t) |")
    print("|---|---:|---:|")
    base = rows["plain"]
    for name, runs in rows.items():
        if name in ("plain", "minilm") or len(runs) < 2:
            continue
        cells = []
        for lang in ("val_python", "val_rust"):
            a, b = [r[lang]["mrr"] for r in runs], [r[lang]["mrr"] for r in base]
            diff = statistics.mean(a) - statistics.mean(b)
            se = (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
            cells.append(f"{diff:+.4f} ({diff / se:+.1f})" if se > 0 else f"{diff:+.4f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
