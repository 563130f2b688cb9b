#!/usr/bin/env bash
# The one test command: formatting, lints, every unit/integration/property test, the crash
# test, the same on a throwaway PostgreSQL, the dashboard in headless Chromium, the API
# descriptions checked and fuzzed, and a short fuzz run of the parsers.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test"
cargo test --workspace

echo "== crash loop on SQLite (20 × load + SIGKILL + restart; events, replay, jobs by key)"
cargo test -p relance --test crash -- --ignored --nocapture

echo "== disk full on SQLite (a 4 MiB tmpfs: 429 + Retry-After, recovery when space returns)"
cargo test -p relance --test disk -- --ignored --nocapture

echo "== PostgreSQL: the same server tests, two instances on one database, crash test, outage"
scripts/with-postgres.sh bash -c '
  set -e
  cargo test -p relance --tests
  cargo test -p relance --test crash -- --ignored --nocapture
  cargo test -p relance --test pg_outage -- --ignored
'

echo "== dashboard in headless Chromium (sign in, contact page, rule editor, backtest + activate, cancel, live feed, phone width)"
scripts/browser-test.sh

echo "== soak, short version (1 min at 2,000 req/s, dispatcher busy): no error, RSS and p99 flat"
bench/soak.sh 1 2000

echo "== API descriptions: openapi-spec-validator and a schemathesis run"
scripts/api-check.sh "${RELANCE_API_CHECK_SECONDS:-90}"

if [[ "${RELANCE_SKIP_FUZZ:-0}" != "1" ]]; then
  echo "== fuzz smoke"
  scripts/fuzz.sh "${RELANCE_FUZZ_SECONDS:-20}"
fi
echo "== all tests passed"
