#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 20 s each) on the stable toolchain
# (`--sanitizer none`), seeded with the reference payloads; an input taking over 5 s is a
# failure too. Prints executions and coverage per target. Installs cargo-fuzz if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked --quiet
fi
for target in brevo behavior rules expression csv; do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  echo "-- fuzz $target for ${seconds}s"
  log="$(mktemp)"
  if ! cargo fuzz run --sanitizer none --fuzz-dir fuzz "$target" "$corpus" "fuzz/seeds/$target" -- \
      -max_total_time="$seconds" -max_len=65536 -timeout=5 -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz target $target failed (crash inputs, if any, are in fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|DONE +cov:" "$log" || true
  rm -f "$log"
done
