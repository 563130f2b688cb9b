#!/usr/bin/env bash
# Browser tests of the dashboard: starts Relance on a fresh SQLite database (Brevo, Power
# Automate and a webhook receiver faked locally; Brevo refuses sends so that some actions
# die), then drives it in headless Chromium with playwright-core (tests/browser/dashboard.mjs). Screenshots go to
# target/screenshots; `SCREENSHOTS=docs/screenshots scripts/browser-test.sh` refreshes the
# README's. Needs /usr/bin/chromium (Debian: chromium) and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    echo "browser tests need Chromium: apt-get install chromium chromium-driver" >&2
    exit 1
fi
(cd tests/browser && npm ci --no-audit --no-fund --silent)
cargo build --quiet --workspace --bins

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    if [ -n "${fake_pid:-}" ]; then kill "$fake_pid" 2>/dev/null || true; wait "$fake_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
port=$(free_port)
fake_port=$(free_port)
# A local fake of Brevo, Power Automate and a webhook receiver: Brevo's account answers
# (the Integrations page's Test), its sends are refused with 401 (so some actions die),
# everything else posted is taken with 200.
cat > "$work/fake.py" <<'PY'
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def answer(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data))); self.end_headers(); self.wfile.write(data)
    def do_GET(self):
        if self.path == "/v3/account": self.answer(200, {"email": "cave@domaine.example", "companyName": "Domaine"})
        else: self.answer(404, {"code": "not_found"})
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path.startswith("/v3/"): self.answer(401, {"code": "unauthorized", "message": "Key not found"})
        else: self.answer(200, {"ok": True})
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$work/fake.py" "$fake_port" &
fake_pid=$!
token="browser-test-admin-$(date +%s%N)"
cat > "$work/relance.toml" <<TOML
[dispatch]
poll_interval_ms = 200
retry_schedule_seconds = [1]
jitter = 0.0
http_timeout_seconds = 2
allow_private_targets = true
TOML

RELANCE_ADMIN_TOKEN="$token" RELANCE_WEBHOOK_TOKEN="$token-webhook" \
RELANCE_BREVO_API_KEY=browser-test RELANCE_BREVO_BASE_URL="http://127.0.0.1:$fake_port/v3" \
RELANCE_POWER_AUTOMATE_URL="http://127.0.0.1:$fake_port/flow?sig=browser" \
RELANCE_WEBHOOK_SIGNING_SECRET="whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD" \
RELANCE_BREVO_SENDER_EMAIL=cave@domaine.example \
    "$root/target/debug/relance" serve --config "$work/relance.toml" --bind "127.0.0.1:$port" \
    --database "sqlite://$work/relance.db" > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/webhook/health" >/dev/null && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/webhook/health" >/dev/null || { cat "$work/server.log"; exit 1; }

status=0
RELANCE_URL="http://127.0.0.1:$port" FAKE_URL="http://127.0.0.1:$fake_port" RELANCE_ADMIN_TOKEN="$token" SCREENSHOTS="${SCREENSHOTS:-$root/target/screenshots}" \
    node tests/browser/dashboard.mjs || status=$?
if [ "$status" -ne 0 ]; then
    echo "--- server log (last 40 lines) ---"
    tail -40 "$work/server.log"
fi
exit "$status"
