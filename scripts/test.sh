#!/usr/bin/env bash
# The one test command: formatting, lints, every unit/integration/property test, the crash
# test, the same on a throwaway PostgreSQL, the API descriptions checked and fuzzed, and a
# short fuzz run of the parsers.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test"
cargo test --workspace

echo "== crash test on SQLite (SIGKILL under load, restart, replay)"
cargo test -p relance --test crash -- --ignored

echo "== PostgreSQL: the same server tests, two instances on one database, crash test, outage"
scripts/with-postgres.sh bash -c '
  set -e
  cargo test -p relance --tests
  cargo test -p relance --test crash -- --ignored
  cargo test -p relance --test pg_outage -- --ignored
'

echo "== API descriptions: openapi-spec-validator and a schemathesis run"
scripts/api-check.sh "${RELANCE_API_CHECK_SECONDS:-90}"

if [[ "${RELANCE_SKIP_FUZZ:-0}" != "1" ]]; then
  echo "== fuzz smoke"
  scripts/fuzz.sh "${RELANCE_FUZZ_SECONDS:-20}"
fi
echo "== all tests passed"
