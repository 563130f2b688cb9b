#!/usr/bin/env bash
# Ingest benchmark: the HTTP floor (bare axum parsing the same JSON) and Relance on SQLite
# (durable: WAL, synchronous=FULL, rules applied), measured in one run with the same
# load, server and load generator pinned to different cores. Writes bench/results/.
#
#   bench/run.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
conns="${2:-32}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
# A throwaway PostgreSQL cluster for the run, on the server's core (synchronous_commit=on).
if [[ -z "${RELANCE_TEST_DATABASE_URL:-}" ]]; then
  exec taskset -c 0 scripts/with-postgres.sh "$0" "$@"
fi
cargo build --release -q -p relance -p relance-floor --bins --example loadgen --example store_ceiling
out="bench/results"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
server_core=0
load_core=1
# `serve` runs at its default log filter, as deployed (each request opens a span at
# `info`); its log goes to bench/results/serve.log. RELANCE_BENCH_LOG=error measures
# without request spans, as the passes before the eleventh did.
serve_log="${RELANCE_BENCH_LOG:-info,tower_http=warn}"
: > "$out/serve.log"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_up() {
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$1/webhook/health" >/dev/null 2>&1 && return 0
    curl -s -o /dev/null -X POST "http://127.0.0.1:$1/webhook/behavior" -d '{}' 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server on port $1 did not start" >&2; return 1
}

# The server core's busy and total ticks from /proc/stat (busy: user, nice, system, irq,
# softirq; steal, idle and iowait are not the server's work).
core_ticks() {
  awk -v c="cpu$server_core" '$1==c {busy=$2+$3+$4+$7+$8; print busy, busy+$5+$6+$9}' /proc/stat
}
# busy_share BEFORE AFTER: the share of the server core that was busy between two readings.
busy_share() {
  python3 -c "b0,t0,b1,t1=map(int,'$1 $2'.split()); print(f'{(b1-b0)/max(t1-t0,1):.3f}')"
}

# measure NAME PORT PID: runs wrk and records req/s, latency, peak RSS and the share of
# the server core that was busy (everything on it: the server, its PostgreSQL, the kernel).
measure() {
  local name=$1 port=$2 pid=$3
  # Warm-up, then the measured run.
  RELANCE_BENCH_RUN="warm-$name" taskset -c $load_core wrk -t1 -c"$conns" -d2s -s bench/behavior.lua "http://127.0.0.1:$port" >/dev/null
  local before after
  before=$(core_ticks)
  RELANCE_BENCH_RUN="$name" taskset -c $load_core wrk -t1 -c"$conns" -d"${seconds}s" --latency -s bench/behavior.lua \
    "http://127.0.0.1:$port" > "$out/wrk-$name.txt"
  after=$(core_ticks)
  echo "$name $(busy_share "$before" "$after")" >> "$work/busy"
  local rss_kb
  rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' "$out/wrk-$name.txt")
  p50=$(awk '$1=="50%" {print $2}' "$out/wrk-$name.txt")
  p99=$(awk '$1=="99%" {print $2}' "$out/wrk-$name.txt")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$out/wrk-$name.txt")
  echo "$name $rps $p50 $p99 $((rss_kb / 1024)) ${non2xx:-0}" >> "$work/summary"
}

# fixed_rate NAME PORT PID: open-loop latency at 50% and 90% of NAME's measured peak
# (latency counted from each request's due time: no coordinated omission).
fixed_rate() {
  local name=$1 port=$2 pid=$3 peak pct rate line
  peak=$(awk -v n="$name" '$1==n {print int($2)}' "$work/summary")
  for pct in 50 90; do
    rate=$((peak * pct / 100))
    line=$(taskset -c $load_core target/release/examples/loadgen --url "http://127.0.0.1:$port" --rate "$rate" \
      --seconds "$seconds" --window "$seconds" --pid "$pid" --connections "$conns" 2>&1 >/dev/null | grep summary)
    echo "$name $pct $rate $line" >> "$work/fixed"
  done
}

port=$(free_port)
taskset -c $server_core target/release/relance-floor "127.0.0.1:$port" 2>/dev/null &
floor_pid=$!
wait_up "$port"
measure floor "$port" $floor_pid
kill $floor_pid; wait $floor_pid 2>/dev/null || true

port=$(free_port)
RELANCE_LOG="$serve_log" taskset -c $server_core target/release/relance serve --bind "127.0.0.1:$port" \
  --database "sqlite://$work/bench.db" 2>>"$out/serve.log" &
relance_pid=$!
wait_up "$port"
measure relance-sqlite "$port" $relance_pid
fixed_rate relance-sqlite "$port" $relance_pid
events=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from events').fetchone()[0])" "$work/bench.db")
kill -TERM $relance_pid; wait $relance_pid 2>/dev/null || true
# Bytes on disk per stored event: the whole file (every table and index the load wrote,
# contacts included) after the server's clean stop, which checkpoints the WAL.
sqlite_bytes=$(( $(stat -c %s "$work/bench.db") / (events > 0 ? events : 1) ))

pg_url="${RELANCE_TEST_DATABASE_URL%/*}/relance_bench_$$"
psql -q "$RELANCE_TEST_DATABASE_URL" -c "CREATE DATABASE relance_bench_$$" >/dev/null
port=$(free_port)
RELANCE_LOG="$serve_log" taskset -c $server_core target/release/relance serve --bind "127.0.0.1:$port" --database "$pg_url" 2>>"$out/serve.log" &
relance_pid=$!
wait_up "$port"
measure relance-postgres "$port" $relance_pid
fixed_rate relance-postgres "$port" $relance_pid
pg_events=$(psql -tAq "$pg_url" -c "select count(*) from events")
kill -TERM $relance_pid; wait $relance_pid 2>/dev/null || true
pg_bytes=$(( $(psql -tAq "$pg_url" -c "select pg_database_size(current_database()) - (select pg_database_size('template1'))") / (pg_events > 0 ? pg_events : 1) ))

# Ceilings: what the storage alone takes on the server's core, before any HTTP work.
#  - store_ceiling: the store's ingest (parse, rules, the committed write set) driven by
#    $conns tasks in-process, SQLite then PostgreSQL (fresh files / databases);
#  - pgbench: PostgreSQL itself, one small INSERT per commit ($conns clients), and 32-row
#    INSERTs per commit (one events-like row per request, nothing else), client on core 1.
ceiling() {
  local name=$1 url=$2 eps before after
  before=$(core_ticks)
  eps=$(taskset -c $server_core target/release/examples/store_ceiling "$url" "$seconds" "$conns" | awk -F= '/events_per_s/ {print $2}')
  after=$(core_ticks)
  echo "$name $eps" >> "$work/ceilings"
  echo "$name $(busy_share "$before" "$after")" >> "$work/busy"
}
ceiling store-sqlite "sqlite://$work/ceiling.db"
psql -q "$RELANCE_TEST_DATABASE_URL" -c "CREATE DATABASE relance_ceiling_$$" >/dev/null
ceiling store-postgres "${RELANCE_TEST_DATABASE_URL%/*}/relance_ceiling_$$"
pgbench_bin=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | head -1)
psql -q "$RELANCE_TEST_DATABASE_URL" -c "CREATE DATABASE pgbench_$$" >/dev/null
pgb_url="${RELANCE_TEST_DATABASE_URL%/*}/pgbench_$$"
psql -q "$pgb_url" -c "CREATE TABLE ev (id bigserial PRIMARY KEY, k text UNIQUE, contact bigint, body text); CREATE INDEX ON ev (contact, id)"
echo "INSERT INTO ev (k, contact, body) VALUES (md5(random()::text), (random()*10000)::int, '{\"action\":\"page_visit\",\"client_code\":\"CL0000001\"}');" > "$work/one.sql"
echo "INSERT INTO ev (k, contact, body) SELECT md5(random()::text), (random()*10000)::int, '{\"action\":\"page_visit\",\"client_code\":\"CL0000001\"}' FROM generate_series(1, 32);" > "$work/batch.sql"
tps=$(taskset -c $load_core "$pgbench_bin" -n -c "$conns" -j 1 -T "$seconds" -f "$work/one.sql" "$pgb_url" 2>/dev/null | awk '/^tps/ {print int($3)}')
echo "pgbench-1-row-per-commit $tps" >> "$work/ceilings"
tps=$(taskset -c $load_core "$pgbench_bin" -n -c 4 -j 1 -T "$seconds" -f "$work/batch.sql" "$pgb_url" 2>/dev/null | awk '/^tps/ {print int($3)}')
echo "pgbench-32-rows-per-commit $((tps * 32))" >> "$work/ceilings"

floor_rps=$(awk '$1=="floor" {print $2}' "$work/summary")
{
  echo "# Ingest benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "$(nproc --all) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); server on core $server_core, wrk on core $load_core;"
  echo "wrk -t1 -c$conns -d${seconds}s with bench/behavior.lua (unique event ids, 10,000 contacts, 20% purchases)."
  echo
  echo "| server | req/s | × floor | p50 | p99 | peak RSS (MiB) | non-2xx |"
  echo "|---|---|---|---|---|---|---|"
  while read -r name rps p50 p99 rss non2xx; do
    ratio=$(python3 -c "print(f'{$rps/$floor_rps:.2f}')")
    echo "| $name | $rps | $ratio | $p50 | $p99 | $rss | $non2xx |"
  done < "$work/summary"
  echo
  echo "Events stored (warm-up included): SQLite $events, PostgreSQL $pg_events."
  echo "Bytes on disk per stored event (all tables and indexes; PostgreSQL beyond an empty database): SQLite $sqlite_bytes, PostgreSQL $pg_bytes."
  echo "Peak RSS is Relance's own (PostgreSQL's processes are not counted)."
  echo
  echo "Ceilings on the server's core (events or rows per second; no HTTP):"
  echo
  echo "| what | per second | × floor |"
  echo "|---|---|---|"
  while read -r name eps; do
    echo "| $name | $eps | $(python3 -c "print(f'{$eps/$floor_rps:.2f}')") |"
  done < "$work/ceilings"
  echo
  echo "The server core's time per request or stored event (busy share of core $server_core ÷ rate; everything on"
  echo "that core counts: the server, its PostgreSQL, the kernel's network and disk work), and the one-core"
  echo "ceiling it implies: the rate a server would reach whose HTTP side cost what the floor's does and whose"
  echo "store cost what the store alone does, 1 / (floor's µs per request + store's µs per event):"
  echo
  echo "| what | busy share of core $server_core | µs per request or event |"
  echo "|---|---|---|"
  python3 - "$work/summary" "$work/ceilings" "$work/busy" "$floor_rps" <<'PY'
import sys
summary, ceilings, busy, floor_rps = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
rate = {l.split()[0]: float(l.split()[1]) for l in open(summary)}
rate.update({l.split()[0]: float(l.split()[1]) for l in open(ceilings)})
share = {l.split()[0]: float(l.split()[1]) for l in open(busy)}
us = {n: share[n] / rate[n] * 1e6 for n in share if rate.get(n)}
for n in share:
    if n in us:
        print(f"| {n} | {share[n]:.0%} | {us[n]:.1f} |")
print()
for backend in ["sqlite", "postgres"]:
    if f"store-{backend}" in us and "floor" in us:
        ceiling = 1e6 / (us["floor"] + us[f"store-{backend}"])
        served = rate.get(f"relance-{backend}", 0)
        print(f"One-core ceiling, {backend}: {ceiling:,.0f} req/s = {ceiling / floor_rps:.3f}× the floor "
              f"(measured serve: {served / floor_rps:.3f}×, {served / ceiling:.0%} of the ceiling).")
        if f"relance-{backend}" in us:
            http = us[f"relance-{backend}"] - us[f"store-{backend}"]
            print(f"  serve's own cost beyond the store alone, {backend}: {http:.1f} µs per request, "
                  f"{http / us['floor']:.1f}× the floor's.")
PY
  echo
  echo "Latency at a fixed rate (examples/loadgen, open loop, ${seconds}s, mixed behaviour and Brevo events):"
  echo
  echo "| server | % of peak | rate | achieved | p50 ms | p99 ms | p99.9 ms | errors |"
  echo "|---|---|---|---|---|---|---|---|"
  while read -r name pct rate rest; do
    python3 - "$name" "$pct" "$rate" "$rest" <<'PY'
import sys
name, pct, rate, rest = sys.argv[1:5]
kv = dict(p.split("=", 1) for p in rest.split() if "=" in p)
print(f"| {name} | {pct}% | {rate}/s | {kv['achieved']} | {kv['p50_ms']} | {kv['p99_ms']} | {kv['p999_ms']} | {kv['errors']} |")
PY
  done < "$work/fixed"
} | tee "$out/ingest.md"

echo
echo "== scaling: ingest rate and memory with 10k, 100k and 1M contacts already stored"
{
  echo "| contacts stored | import (s) | req/s | p99 | peak RSS (MiB) |"
  echo "|---|---|---|---|---|"
  for n in 10000 100000 1000000; do
    python3 - "$n" "$work/contacts.csv" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("client_code,email,segment,rfm_score,purchases,total_spent\n")
    for i in range(n):
        f.write(f"CL{i:07d},c{i}@example.fr,{'VIP' if i % 10 == 0 else 'Standard'},{i % 5},{i % 7},{(i % 13) * 10}\n")
PY
    rm -f "$work/scale.db"*
    started=$(date +%s.%N)
    RELANCE_LOG=error target/release/relance contacts import "$work/contacts.csv" --database "sqlite://$work/scale.db" >/dev/null
    import_s=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
    port=$(free_port)
    RELANCE_LOG="$serve_log" taskset -c $server_core target/release/relance serve --bind "127.0.0.1:$port" \
      --database "sqlite://$work/scale.db" 2>>"$out/serve.log" &
    relance_pid=$!
    wait_up "$port"
    RELANCE_BENCH_CONTACTS=$n RELANCE_BENCH_RUN="scale-$n" taskset -c $load_core wrk -t1 -c"$conns" -d"${seconds}s" \
      --latency -s bench/behavior.lua "http://127.0.0.1:$port" > "$out/wrk-scale-$n.txt"
    rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$relance_pid/status")
    kill -TERM $relance_pid; wait $relance_pid 2>/dev/null || true
    rps=$(awk '/Requests\/sec/ {print $2}' "$out/wrk-scale-$n.txt")
    p99=$(awk '$1=="99%" {print $2}' "$out/wrk-scale-$n.txt")
    echo "| $n | $import_s | $rps | $p99 | $((rss_kb / 1024)) |"
  done
} | tee "$out/scaling.md"

echo
echo "== dispatcher: 100,000 signed webhooks to a local receiver"
cargo build --release -q -p relance --example dispatch_bench
target/release/examples/dispatch_bench 100000 burst | tee "$out/dispatch.txt"
target/release/examples/dispatch_bench 100000 steady 5000 | tee -a "$out/dispatch.txt"

echo
echo "== backtest: 1,000,000 stored events through two rule sets"
cargo build --release -q -p relance --example backtest_bench
target/release/examples/backtest_bench 1000000 | tee "$out/backtest.txt"

echo
echo "== dashboard: pages on 100,000 contacts and 1,000,000 events"
cargo build --release -q -p relance --example dashboard_bench
target/release/examples/dashboard_bench 100000 1000000 | tee "$out/dashboard.md"

if [[ "${RELANCE_BENCH_ENGINE:-1}" == "1" ]]; then
  echo
  echo "== engine (criterion)"
  cargo bench -q -p relance-core --bench apply -- --warm-up-time 1 --measurement-time 5 2>&1 \
    | grep -E "actions fired|^apply/|thrpt" | tee "$out/engine.txt"
fi
