#!/usr/bin/env bash
# The one test command: prerequisites checked (and, as root on Debian, installed) first;
# formatting, lints, every unit/integration/property test, the crash test, the same on a
# throwaway PostgreSQL, the dashboard in headless Chromium, the README's quick start, the
# Debian package installed and served, the API descriptions checked and fuzzed, and a short
# fuzz run of the parsers.
#
# Every cargo step uses the same workspace-wide feature set (`--workspace`), so a step
# reuses what the previous one built instead of recompiling.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { echo "== $* ($(( SECONDS - started )) s)"; }

step "prerequisites"
bash scripts/prerequisites.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (unit, property, and every integration test in one binary)"
cargo test --workspace

step "crash loop on SQLite (20 × load + SIGKILL + restart; events, replay, jobs by key)"
cargo test --workspace --test api -- --ignored --nocapture crash::

if [[ "${RELANCE_SKIP_ROOT_TESTS:-0}" != "1" ]]; then
  step "disk full and read-only on SQLite (a 4 MiB tmpfs, a loop device: 429 + Retry-After, recovery)"
  cargo test --workspace --test api -- --ignored --nocapture disk::
else
  step "disk tests SKIPPED (RELANCE_SKIP_ROOT_TESTS=1)"
fi

step "PostgreSQL: the same server tests, two instances on one database, crash test, outage"
scripts/with-postgres.sh bash -c '
  set -e
  cargo test --workspace --test api
  cargo test --workspace --test api -- --ignored --nocapture crash::
  cargo test --workspace --test api -- --ignored pg_outage::
'

step "dashboard in headless Chromium (sign in, contact page, rule editor, backtest + activate, cancel, live feed, phone width)"
scripts/browser-test.sh

step "soak, short version (1 min at 2,000 req/s, dispatcher busy): no error, RSS and p99 flat"
bench/soak.sh 1 2000

step "the README's quick start, run from its own text (release build, as a new user would)"
python3 scripts/readme-test.py

if [[ "${RELANCE_SKIP_ROOT_TESTS:-0}" != "1" ]]; then
  step "Debian package: built, installed with dpkg -i, unit verified, one event served as the relance user, purged"
  scripts/package-test.sh
else
  step "Debian package test SKIPPED (RELANCE_SKIP_ROOT_TESTS=1)"
fi

step "API descriptions: openapi-spec-validator and a schemathesis run"
scripts/api-check.sh "${RELANCE_API_CHECK_SECONDS:-90}"

if [[ "${RELANCE_SKIP_FUZZ:-0}" != "1" ]]; then
  step "fuzz smoke"
  scripts/fuzz.sh "${RELANCE_FUZZ_SECONDS:-20}"
fi
step "all tests passed"
du -sh target 2>/dev/null | sed 's/^/target\/ now holds /' || true
