#!/usr/bin/env python3
"""The table of bench/head_ablation.sh: mean ± sd over seeds of each row's runs.

  head_ablation_table.py RUNS.jsonl                  markdown table on stdout
  head_ablation_table.py RUNS.jsonl --best-of A B..  the row among A B.. with the highest mean
                                                     validation MRR (both languages averaged)
"""
import json
import statistics
import sys


def load(path):
    rows = {}
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
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


if __name__ == "__main__":
    main()
