#!/usr/bin/env bash
# Short fuzz runs of the parsers that read bytes from disk (write-ahead log records, segment
# headers, manifests and tombstones): SECONDS_PER_TARGET seconds each (default 5), starting from
# the seeds in fuzz/seeds. cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them. Installs cargo-fuzz from crates.io if it is missing (about 40 s).
# A longer run: SECONDS_PER_TARGET=600 bash scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${SECONDS_PER_TARGET:-5}"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
cargo fuzz build -O
for target in wal_record segment_header manifest; do
  mkdir -p "corpus/$target"
  echo "fuzzing $target for ${seconds}s"
  log="$(mktemp)"
  if ! cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz target $target failed; the input is in fuzz/artifacts/$target" >&2
    exit 1
  fi
  grep -E "^Done" "$log" || true
  rm -f "$log"
done
