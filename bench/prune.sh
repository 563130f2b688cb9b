#!/usr/bin/env bash
# Ingest p99 while a retention pass prunes, against the same load on a copy of the same
# database with nothing to prune: one run, same machine, server on core 0, wrk on core 1.
#
#   bench/prune.sh [LOAD_SECONDS]     (default 20: about 200k events to age and prune)
#
# The loaded events and finished jobs are aged by 200 days (their times moved back in the
# file), so that the pass under measurement has a realistic backlog: every raw payload
# and every finished job goes, in batches of [retention] batch_size.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p relance --bin relance
bin=target/release/relance
dir=$(mktemp -d)
server=""
trap '[[ -n $server ]] && kill $server 2>/dev/null; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start() { # DB RAW_DAYS JOBS_DAYS
  RELANCE_LOG=warn RELANCE_RETENTION__RAW_PAYLOAD_DAYS=$2 RELANCE_RETENTION__FINISHED_JOBS_DAYS=$3 \
    taskset -c 0 "$bin" serve --bind "127.0.0.1:$port" --database "sqlite://$1" &
  server=$!
  until curl -fs "http://127.0.0.1:$port/webhook/health" >/dev/null; do sleep 0.05; done
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=""; }
load() { # NAME SECONDS → wrk output
  RELANCE_BENCH_RUN="$1" taskset -c 1 wrk -t1 -c32 -d"${2}s" --latency -s bench/behavior.lua "http://127.0.0.1:$port"
}

start "$dir/live.db" keep keep
load seed "$seconds" > "$dir/seed.txt"
stop
python3 - "$dir/live.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
age = 200 * 86400 * 1000
c.execute("UPDATE events SET received_at = received_at - ?", (age,))
c.execute("UPDATE jobs SET due_at = due_at - ?, updated_at = updated_at - ? WHERE state IN ('done','dead','cancelled','suppressed','skipped')", (age, age))
c.commit()
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
PY
cp "$dir/live.db" "$dir/copy.db"
events=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from events').fetchone()[0])" "$dir/live.db")
jobs=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from jobs where state in ('done','dead','cancelled','suppressed','skipped')\").fetchone()[0])" "$dir/live.db")
"$bin" db stats --database "sqlite://$dir/live.db" | grep -E '^(events|jobs|job_attempts|total)|per stored' > "$dir/stats-before.txt"

# Baseline: the aged copy, nothing pruned.
start "$dir/copy.db" keep keep
load baseline 10 > "$dir/baseline.txt"
stop
# Under prune: the first pass starts 10 s after start; the load covers it.
start "$dir/live.db" 90 180
sleep 9
load prune 10 > "$dir/prune.txt"
pruned=$(curl -fs "http://127.0.0.1:$port/metrics" | awk '/^relance_retention_pruned_total/ {print $1, $2}')
# Then until the pass is done (no load): how long the whole backlog takes.
waited=0
until [[ $(python3 -c "import sqlite3,sys,time; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from events where raw <> 'null' and received_at < ?\", ((time.time() - 90 * 86400) * 1000,)).fetchone()[0])" "$dir/live.db") -le 0 ]] || (( waited >= 120 )); do
  sleep 1; waited=$((waited + 1))
done
stop
"$bin" db stats --database "sqlite://$dir/live.db" | grep -E '^(events|jobs|job_attempts|total)|per stored' > "$dir/stats-after.txt"

p99() { awk '$1=="99%" {print $2}' "$1"; }
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
echo "aged backlog: $events events, $jobs finished jobs (seeded by ${seconds} s of load at $(rps "$dir/seed.txt") req/s)"
echo "baseline (nothing to prune): $(rps "$dir/baseline.txt") req/s, p99 $(p99 "$dir/baseline.txt")"
echo "during the prune:            $(rps "$dir/prune.txt") req/s, p99 $(p99 "$dir/prune.txt")"
echo "pruned during that 10 s window (batches of 500, 20 ms apart):"; sed 's/^/  /' <<<"$pruned"
echo "whole backlog pruned $((19 + waited)) s after start (first pass at 10 s)"
echo "before:"; sed 's/^/  /' "$dir/stats-before.txt"
echo "after:";  sed 's/^/  /' "$dir/stats-after.txt"
