#!/usr/bin/env bash
# Soak: mixed traffic (behaviour and Brevo events, 10,000 contacts) at a fixed rate on
# SQLite, with the dispatcher busy (every visit fires a signed webhook to a local
# receiver; emails go to the outbox), for MINUTES. Reports one line per window (rate,
# errors, p50/p99/p99.9 measured from each request's due time, server RSS) and fails if
# any request failed, if RSS or p99 grew over the run, or if the dispatcher fell behind.
#
#   bench/soak.sh [minutes=30] [rate]      rate default: half the measured peak
#
# Writes bench/results/soak-<minutes>m.csv and .md.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-30}"
rate="${2:-}"
seconds=$((minutes * 60))
window=$(( minutes >= 10 ? 60 : 10 ))
cargo build --release -q -p relance -p relance-floor --bins --example loadgen
out="bench/results"
mkdir -p "$out"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The webhook receiver: the floor server answers any JSON POST.
receiver_port=$(free_port)
target/release/relance-floor "127.0.0.1:$receiver_port" 2>/dev/null &
pids+=($!)

cp docs/examples/rules.toml "$work/rules.toml"
cat >>"$work/rules.toml" <<RULES

[[rule]]
rule_id = "soak_visit_webhook"
trigger = "page_visit"
priority = 10
description = "Soak: every visit notifies a receiver at once"

[[rule.actions]]
action_type = "trigger_webhook"
config = { url = "http://127.0.0.1:$receiver_port/webhook/behavior" }
RULES
cat >"$work/relance.toml" <<CONF
rules = "$work/rules.toml"
[dispatch]
allow_private_targets = true
CONF

port=$(free_port)
RELANCE_LOG=error RELANCE_WEBHOOK_SIGNING_SECRET="whsec_$(printf 'soak-secret-0123456789abcdef' | base64)" \
  target/release/relance serve --config "$work/relance.toml" --bind "127.0.0.1:$port" \
  --database "sqlite://$work/soak.db" &
relance_pid=$!
pids+=($relance_pid)
up=0
for _ in $(seq 100); do
  if curl -fs "http://127.0.0.1:$port/webhook/health" >/dev/null 2>&1; then up=1; break; fi
  sleep 0.1
done
(( up )) || { echo "relance did not start" >&2; exit 1; }

if [[ -z "$rate" ]]; then
  command -v wrk >/dev/null || { echo "give a rate, or install wrk to measure the peak" >&2; exit 1; }
  peak=$(RELANCE_BENCH_RUN=peak wrk -t1 -c32 -d10s -s bench/behavior.lua "http://127.0.0.1:$port" \
    | awk '/Requests\/sec/ {print int($2)}')
  rate=$((peak / 2))
  echo "peak ${peak} req/s; soaking at ${rate} req/s"
fi

echo "== soak: ${minutes} min at ${rate} req/s, windows of ${window}s"
target/release/examples/loadgen --url "http://127.0.0.1:$port" --rate "$rate" --seconds "$seconds" \
  --window "$window" --pid "$relance_pid" >"$work/soak.csv" 2>"$work/summary.txt"
cat "$work/soak.csv"
cat "$work/summary.txt"

# Let the dispatcher finish, then look at the queue.
sleep 5
stats=$(curl -fsS "http://127.0.0.1:$port/api/actions/stats")
cp "$work/soak.csv" "$out/soak-${minutes}m.csv"

python3 - "$work/soak.csv" "$work/summary.txt" "$stats" "$minutes" "$rate" "$out/soak-${minutes}m.md" "$work/soak.db" <<'PY'
import csv, json, sqlite3, sys, time
rows = list(csv.DictReader(open(sys.argv[1])))
summary = open(sys.argv[2]).read().strip()
stats = json.loads(sys.argv[3])
minutes, rate, report = sys.argv[4], sys.argv[5], sys.argv[6]
jobs = {}
for j in stats["jobs"]:
    jobs[j["state"]] = jobs.get(j["state"], 0) + j["count"]
problems = []
errors = sum(int(r["errors"]) for r in rows)
if errors:
    problems.append(f"{errors} failed requests")
steady = rows[1:] if len(rows) > 3 else rows  # the first window warms up
third = max(1, len(steady) // 3)
first, last = steady[:third], steady[-third:]
rss_first = max(float(r["rss_mb"]) for r in first)
rss_last = max(float(r["rss_mb"]) for r in last)
if rss_last > rss_first * 1.25 + 8:
    problems.append(f"RSS grew from {rss_first:.1f} to {rss_last:.1f} MiB")
med = lambda xs: sorted(xs)[len(xs) // 2]
p99_first = med([float(r["p99_ms"]) for r in first])
p99_last = med([float(r["p99_ms"]) for r in last])
if p99_last > 2 * p99_first + 2:
    problems.append(f"p99 grew from {p99_first:.2f} to {p99_last:.2f} ms")
# Jobs due more than 5 s ago and still not done: the dispatcher fell behind.
now_ms = int(time.time() * 1000)
behind = sqlite3.connect(sys.argv[7]).execute(
    "SELECT count(*) FROM jobs WHERE state IN ('pending', 'running', 'failed') AND due_at < ?", (now_ms - 5000,)
).fetchone()[0]
if behind:
    problems.append(f"{behind} jobs overdue by more than 5 s")
dead_causes = sqlite3.connect(sys.argv[7]).execute(
    "SELECT action_type, substr(coalesce(last_error, ''), 1, 120), count(*) FROM jobs WHERE state = 'dead' "
    "GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 5"
).fetchall()
if jobs.get("dead", 0):
    problems.append(f"{jobs['dead']} dead jobs ({'; '.join(f'{n} {a}: {e}' for a, e, n in dead_causes)})")
with open(report, "w") as f:
    f.write(f"# Soak: {minutes} min at {rate} req/s (SQLite, dispatcher busy)\n\n")
    f.write(f"`bench/soak.sh {minutes} {rate}`; windows in `soak-{minutes}m.csv`.\n\n")
    f.write(f"- {summary}\n")
    f.write(f"- RSS (MiB): first third max {rss_first:.1f}, last third max {rss_last:.1f}\n")
    f.write(f"- p99 (ms): first third median {p99_first:.2f}, last third median {p99_last:.2f}\n")
    f.write(f"- jobs: {json.dumps(jobs, sort_keys=True)}; overdue by more than 5 s: {behind} (pending ones are the seed's delayed emails and tasks)\n")
    f.write(f"- verdict: {'OK' if not problems else 'FAILED: ' + '; '.join(problems)}\n\n")
    f.write("| t (s) | sent | ok/s | errors | p50 ms | p99 ms | p99.9 ms | RSS MiB |\n|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        f.write(f"| {r['t_s']} | {r['sent']} | {r['ok_rate']} | {r['errors']} | {r['p50_ms']} | {r['p99_ms']} | {r['p999_ms']} | {r['rss_mb']} |\n")
print(open(report).read())
sys.exit(1 if problems else 0)
PY
