#!/usr/bin/env bash
# The fault table at length: every kind of fault the store and server are tested against, with
# more faults than CI injects. Each test prints its line of the table (faults injected,
# operations checked, acknowledged writes lost, wrong reads, latency of well-behaved clients).
#
#   bash scripts/faults.sh            # about 10 minutes on 2 idle cores
#   KILLS=200 ROUNDS=500 bash scripts/faults.sh
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS="${KILLS:-60}"
ROUNDS="${ROUNDS:-200}"
run() { echo "== $*"; "$@" 2>&1 | grep -E '^\||history test|crash test|fault |tmpfs|SKIPPED|median search latency|cases|test result' || true; }
# kill: SIGKILLs under four concurrent clients, every operation's outcome checked
run env BITSEEK_HISTORY_KILLS="$KILLS" cargo test --release -p bitseek --test history -- --nocapture
run env BITSEEK_HISTORY_KILLS="$KILLS" BITSEEK_HISTORY_DURABILITY=grouped cargo test --release -p bitseek --test history -- --nocapture
# disk full, fsync, write, rename and create errors: every Nth call of the workload, then a real tmpfs
run env BITSEEK_FAULT_STEPS=all cargo test --release -p bitseek-store --test faults -- --nocapture
# the same faults held over HTTP while a writer is refused and a client searches
run env BITSEEK_FAULT_ROUNDS="$ROUNDS" cargo test --release -p bitseek-server --test faults -- --nocapture
# slow clients: hundreds of stalled connections while another client searches
run cargo test --release -p bitseek-server --test hostile -- --nocapture
# log damage: truncation, bit flips and zeroed pages in every file
run cargo test --release -p bitseek-store --test corruption -- --nocapture
