#!/usr/bin/env bash
# Ingest, two builds side by side in one run: the same wrk load as bench/run.sh against
# `relance serve` on SQLite and on PostgreSQL, and the store alone (store_ceiling), for
# build A then build B, alternating `rounds` times so that the VM's drift hits both alike.
#
#   bench/compare.sh A_RELEASE_DIR B_RELEASE_DIR [seconds=10] [connections=32] [rounds=2]
#
# Each RELEASE_DIR holds `relance` and `examples/store_ceiling` (a target/release).
# Prints one line per run and the medians; ratios are B / A.
set -euo pipefail
cd "$(dirname "$0")/.."
a_dir="$1"; b_dir="$2"; seconds="${3:-10}"; conns="${4:-32}"; rounds="${5:-2}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
if [[ -z "${RELANCE_TEST_DATABASE_URL:-}" ]]; then
  exec taskset -c 0 scripts/with-postgres.sh "$0" "$@"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
server_core=0
load_core=1
# As in run.sh: `serve` at its default log filter unless RELANCE_BENCH_LOG says otherwise.
serve_log="${RELANCE_BENCH_LOG:-info,tower_http=warn}"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() {
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$1/webhook/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server on port $1 did not start" >&2; return 1
}
fresh_pg() { psql -q "$RELANCE_TEST_DATABASE_URL" -c "CREATE DATABASE $1" >/dev/null; echo "${RELANCE_TEST_DATABASE_URL%/*}/$1"; }

# serve BUILD NAME DATABASE_URL: req/s and p99 (ms) of one wrk run against a fresh database.
serve() {
  local dir=$1 name=$2 url=$3 port pid measured
  port=$(free_port)
  RELANCE_LOG="$serve_log" taskset -c $server_core "$dir/relance" serve --bind "127.0.0.1:$port" --database "$url" 2>>"$work/serve.log" &
  pid=$!
  wait_up "$port"
  RELANCE_BENCH_RUN="warm-$name" taskset -c $load_core wrk -t1 -c"$conns" -d2s -s bench/behavior.lua "http://127.0.0.1:$port" >/dev/null
  measured=$(RELANCE_BENCH_RUN="$name" taskset -c $load_core wrk -t1 -c"$conns" -d"${seconds}s" --latency -s bench/behavior.lua \
    "http://127.0.0.1:$port" | awk '/Requests\/sec/ {rps=int($2)} $1=="99%" {p=$2; ms=(p ~ /us$/) ? p/1000 : (p ~ /ms$/) ? p+0 : p*1000} END {print rps, ms}')
  kill -TERM $pid; wait $pid 2>/dev/null || true
  echo "$measured"
}

n=0
for round in $(seq "$rounds"); do
  for side in A B; do
    dir=$a_dir; [[ $side == B ]] && dir=$b_dir
    n=$((n + 1))
    echo "$side serve-sqlite $(serve "$dir" "s$n" "sqlite://$work/s$n.db")" | tee -a "$work/runs"
    echo "$side serve-postgres $(serve "$dir" "p$n" "$(fresh_pg "cmp_p${n}_$$")")" | tee -a "$work/runs"
    eps=$(taskset -c $server_core "$dir/examples/store_ceiling" "sqlite://$work/c$n.db" "$seconds" "$conns" | awk -F= '/events_per_s/ {print int($2)}')
    echo "$side store-sqlite $eps" | tee -a "$work/runs"
    eps=$(taskset -c $server_core "$dir/examples/store_ceiling" "$(fresh_pg "cmp_c${n}_$$")" "$seconds" "$conns" | awk -F= '/events_per_s/ {print int($2)}')
    echo "$side store-postgres $eps" | tee -a "$work/runs"
  done
done
echo
echo "medians over $rounds rounds ($seconds s, $conns connections), B / A:"
python3 - "$work/runs" <<'EOF'
import statistics, sys, collections
runs = collections.defaultdict(list)
p99 = collections.defaultdict(list)
for line in open(sys.argv[1]):
    side, what, value, *latency = line.split()
    runs[(what, side)].append(int(value))
    if latency:
        p99[(what, side)].append(float(latency[0]))
for what in ["serve-sqlite", "serve-postgres", "store-sqlite", "store-postgres"]:
    a, b = statistics.median(runs[(what, "A")]), statistics.median(runs[(what, "B")])
    line = f"{what:16} A {a:>9,.0f}/s   B {b:>9,.0f}/s   B/A {b / a:.2f}"
    if p99[(what, "A")]:
        line += f"   p99 A {statistics.median(p99[(what, 'A')]):.2f} ms, B {statistics.median(p99[(what, 'B')]):.2f} ms"
    print(line)
EOF
