#!/usr/bin/env python3
"""Edit -> committed index: `bitseek index --watch` (model loaded, --debounce-ms 100) against a one-shot
`bitseek index` process, each on its own copy of an indexed repository, alternated, the same edit
(a new function appended to FILE), medians over --runs. The repository itself is not touched.

    python3 scripts/watch-latency.py --dir REPO --file src/lib.rs [--runs 7] [--int8]

REPO must be indexed (`bitseek index REPO`, with --int8 if passed here); the binary is $BITSEEK_BIN
or target/release/bitseek.
"""

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="an indexed repository")
    ap.add_argument("--file", required=True, help="a source file in it to append a function to")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--int8", action="store_true", help="the index was built with --int8")
    a = ap.parse_args()
    binary = os.environ.get("BITSEEK_BIN", str(ROOT / "target" / "release" / "bitseek"))
    flags = ["--int8"] if a.int8 else []
    tmp = pathlib.Path(tempfile.mkdtemp())
    try:
        watched, oneshot_dir = tmp / "watched", tmp / "oneshot"
        shutil.copytree(a.dir, watched, symlinks=True)
        shutil.copytree(a.dir, oneshot_dir, symlinks=True)
        orig = (watched / a.file).read_text()
        p = subprocess.Popen([binary, "index", "--watch", "--json", "--debounce-ms", "100", *flags, str(watched)],
                             stdout=subprocess.PIPE, text=True)
        assert json.loads(p.stdout.readline())["event"] == "ready"
        watch, oneshot, update = [], [], []
        for i in range(a.runs):
            text = orig + f"\n\ndef edited_{i}():\n    return {i}\n" if a.file.endswith(".py") else \
                orig + f"\n\n/// Edit {i}.\npub fn edited_{i}() {{}}\n"
            (watched / a.file).write_text(text)
            t0 = time.perf_counter()
            while True:
                ev = json.loads(p.stdout.readline())
                if ev["event"] == "updated":
                    break
            watch.append((time.perf_counter() - t0) * 1e3)
            update.append(ev["seconds"] * 1e3)
            (oneshot_dir / a.file).write_text(text)
            t0 = time.perf_counter()
            subprocess.run([binary, "index", "--json", *flags, str(oneshot_dir)], check=True, capture_output=True)
            oneshot.append((time.perf_counter() - t0) * 1e3)
        p.terminate()
        p.wait()
    finally:
        shutil.rmtree(tmp)
    m = statistics.median
    print(json.dumps({"runs": a.runs, "units": ev["units"], "watch_edit_to_commit_ms": round(m(watch)),
                      "watch_update_ms": round(m(update)), "oneshot_index_process_ms": round(m(oneshot)),
                      "ratio_watch_over_oneshot": round(m(watch) / m(oneshot), 3), "load": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
