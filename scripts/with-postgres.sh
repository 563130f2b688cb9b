#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster: a temp directory, a free port on
# 127.0.0.1, trust auth for the local user. RELANCE_TEST_DATABASE_URL points at it.
# The cluster is stopped and removed when the command ends.
#
#   scripts/with-postgres.sh cargo test
set -euo pipefail
if ! command -v initdb >/dev/null || ! command -v pg_ctl >/dev/null; then
  for d in /usr/lib/postgresql/*/bin; do PATH="$d:$PATH"; done
fi
if ! command -v initdb >/dev/null && [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null; then
  echo "installing PostgreSQL from Debian's packages" >&2
  (apt-get install -y -q postgresql >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }) || true
  for d in /usr/lib/postgresql/*/bin; do PATH="$d:$PATH"; done
fi
if ! command -v initdb >/dev/null; then
  echo "PostgreSQL server binaries (initdb, pg_ctl) are needed: apt-get install postgresql" >&2
  exit 1
fi
dir="$(mktemp -d /tmp/relance-pg.XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
as_pg=()
if [[ "$(id -u)" == "0" ]]; then
  # initdb refuses to run as root.
  chown postgres "$dir"
  as_pg=(runuser -u postgres --)
fi
cleanup() {
  "${as_pg[@]}" pg_ctl -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
"${as_pg[@]}" initdb -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
"${as_pg[@]}" pg_ctl -D "$dir/data" -l "$dir/log" -w -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c synchronous_commit=on" start >/dev/null
export RELANCE_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
# For the outage test: how to stop and start this cluster.
export RELANCE_TEST_PG_STOP="${as_pg[*]} pg_ctl -D $dir/data -m fast -w stop"
export RELANCE_TEST_PG_START="${as_pg[*]} pg_ctl -D $dir/data -l $dir/log -w -o '-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200' start"
echo "PostgreSQL $("${as_pg[@]}" postgres --version | awk '{print $3}') on port $port"
"$@"
