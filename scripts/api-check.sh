#!/usr/bin/env bash
# Checks the API descriptions against a running server:
#   1. /openapi.json (OpenAPI 3.1) and /connector/swagger.json (Swagger 2.0, the Power
#      Automate connector) pass openapi-spec-validator;
#   2. schemathesis fuzzes every operation from /openapi.json: no 5xx, every answer
#      matches its documented schema and content type.
# Usage: scripts/api-check.sh [SECONDS]   (schemathesis time budget, default 120)
# Python tools go in a virtualenv under target/ (installed from PyPI on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
budget="${1:-120}"

venv="${RELANCE_API_CHECK_VENV:-target/api-check-venv}"
if [[ ! -x "$venv/bin/schemathesis" || ! -x "$venv/bin/openapi-spec-validator" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "openapi-spec-validator==0.9.0" "schemathesis==4.32.5"
fi

cargo build --quiet --workspace --bins
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
token="api-check-admin-token"
RELANCE_ADMIN_TOKEN="$token" RELANCE_WEBHOOK_TOKEN="api-check-webhook-token" RELANCE_LOG=warn \
  target/debug/relance serve --bind "127.0.0.1:$port" --database "sqlite://$work/relance.db" \
  >"$work/server.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fsS "$base/webhook/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$base/openapi.json" -o "$work/openapi.json"
curl -fsS "$base/connector/swagger.json" -o "$work/swagger.json"

echo "== openapi-spec-validator: OpenAPI 3.1 and the Swagger 2.0 connector"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"
"$venv/bin/openapi-spec-validator" --schema 2.0 "$work/swagger.json"
size=$(wc -c <"$work/swagger.json")
if (( size >= 1000000 )); then
  echo "the connector is $size bytes; Power Automate accepts under 1 MB" >&2
  exit 1
fi

echo "== schemathesis (${budget}s): no 5xx, answers match their schemas"
"$venv/bin/schemathesis" run "$base/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance \
  --max-examples 25 --max-time "$budget" --seed 1 --workers 2 \
  --warnings off

if grep -q 'panicked' "$work/server.log"; then
  echo "the server panicked:" >&2
  grep -A5 'panicked' "$work/server.log" >&2
  exit 1
fi
echo "== API descriptions OK"
