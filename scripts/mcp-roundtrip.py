#!/usr/bin/env python3
"""Times `bitseek mcp` the way an agent meets it: start the server, initialize, one search.

Reports medians over repeated runs of (a) the whole round trip from process start to the search's
answer (the model load included: it runs in the background from the start), (b) the handshake
alone and (c) a second search on the same server (the model and index kept loaded).

    python3 scripts/mcp-roundtrip.py --dir REPO [--runs 5] [--question "..."]

REPO must be indexed (`bitseek index REPO`); the binary is $BITSEEK_BIN or target/release/bitseek.
Standard library only: raw JSON-RPC over the server's stdio, so no client library's cost is counted.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def once(binary, repo, question):
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [binary, "mcp", "--dir", repo], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
    )

    def call(i, method, params):
        p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params}) + "\n")
        p.stdin.flush()
        while True:
            msg = json.loads(p.stdout.readline())
            if msg.get("id") == i:
                return msg

    call(1, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                           "clientInfo": {"name": "roundtrip", "version": "0"}})
    p.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
    p.stdin.flush()
    t_init = time.perf_counter()
    r = call(2, "tools/call", {"name": "search", "arguments": {"question": question, "k": 10}})
    t_search = time.perf_counter()
    if r["result"].get("isError"):
        raise SystemExit(f"search failed: {r['result']['content'][0]['text']}")
    call(3, "tools/call", {"name": "search", "arguments": {"question": question + " again", "k": 10}})
    t_second = time.perf_counter()
    p.stdin.close()
    p.wait()
    return t_search - t0, t_init - t0, t_second - t_search


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="an indexed repository")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--question", default="where are index files checksummed")
    a = ap.parse_args()
    binary = os.environ.get("BITSEEK_BIN", str(ROOT / "target" / "release" / "bitseek"))
    runs = [once(binary, a.dir, a.question) for _ in range(a.runs)]
    total, init, second = (statistics.median(x) * 1e3 for x in zip(*runs))
    print(json.dumps({"runs": a.runs, "start_initialize_search_ms": round(total, 1),
                      "start_initialize_ms": round(init, 1), "next_search_ms": round(second, 1),
                      "load": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
