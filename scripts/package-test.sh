#!/usr/bin/env bash
# The Debian package, installed for real (root): files, user and permissions, the unit
# checked by systemd-analyze, then the installed binary started as systemd would start it
# (the unit's user, its environment file and configuration, its ExecStartPre) to take one
# event. Purged afterwards; a relance user it created is removed again.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "package test needs root (dpkg -i)"; exit 1; }
if dpkg -s relance >/dev/null 2>&1; then
  echo "a relance package is already installed here; refusing to replace it"; exit 1
fi
user_existed=0
getent passwd relance >/dev/null && user_existed=1
server=""
cleanup() {
  [[ -n "$server" ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  dpkg --purge relance >/dev/null 2>&1 || true
  if [[ $user_existed -eq 0 ]] && getent passwd relance >/dev/null; then
    userdel relance >/dev/null 2>&1 || true
    getent group relance >/dev/null && groupdel relance >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
fail() { echo "package test: $*" >&2; exit 1; }

deb=$(scripts/package-deb.sh target/debian | tail -1)
echo "built $deb ($(du -h "$deb" | cut -f1))"
dpkg -i "$deb" >/dev/null

for f in /usr/bin/relance /lib/systemd/system/relance.service /etc/relance/relance.toml /etc/relance/env \
         /usr/share/doc/relance/deploying.md; do
  [[ -f $f ]] || fail "$f missing"
done
getent passwd relance >/dev/null || fail "no relance user"
[[ $(getent passwd relance | cut -d: -f7) == /usr/sbin/nologin ]] || fail "the relance user has a login shell"
[[ $(stat -c '%a %U' /etc/relance/env) == "600 root" ]] || fail "/etc/relance/env is $(stat -c '%a %U' /etc/relance/env)"
[[ $(stat -c '%a %U %G' /var/lib/relance) == "750 relance relance" ]] || fail "/var/lib/relance is $(stat -c '%a %U %G' /var/lib/relance)"
grep -qx /etc/relance/relance.toml /var/lib/dpkg/info/relance.conffiles || fail "relance.toml is not a conffile"
unit=/lib/systemd/system/relance.service
for key in 'User=relance' 'StateDirectory=relance' 'ProtectSystem=strict' 'NoNewPrivileges=true' \
           'Restart=on-failure' 'ExecStartPre=/usr/bin/relance check'; do
  grep -qx "$key" "$unit" || fail "the unit lacks $key"
done
if command -v systemd-analyze >/dev/null; then
  verify=$(systemd-analyze verify "$unit" 2>&1 || true)
  if grep -q 'relance.service' <<<"$verify"; then fail "systemd-analyze verify: $verify"; fi
  echo "systemd-analyze verify: clean"
else
  echo "systemd-analyze not available: unit not verified"
fi

# As systemd would: the unit's user, EnvironmentFile, Environment, WorkingDirectory.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
sed -i "s/^RELANCE_WEBHOOK_TOKEN=.*/RELANCE_WEBHOOK_TOKEN=$token/; s/^RELANCE_ADMIN_TOKEN=.*/RELANCE_ADMIN_TOKEN=admin-$token/" /etc/relance/env
mapfile -t unit_env < <(grep -E '^[A-Z_]+=' /etc/relance/env)
as_unit=(setpriv --reuid relance --regid relance --init-groups --no-new-privs
         env "${unit_env[@]}" RELANCE_CONFIG=/etc/relance/relance.toml RELANCE_BIND="127.0.0.1:$port" RELANCE_LOG=warn)
cd /var/lib/relance
"${as_unit[@]}" /usr/bin/relance check > /tmp/relance-package-check.log ||
  { cat /tmp/relance-package-check.log; fail "relance check refused the installed configuration"; }
# setpriv and env exec: $! is the server itself.
"${as_unit[@]}" /usr/bin/relance serve &
server=$!
cd - >/dev/null
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/webhook/health" >/dev/null 2>&1 && break
  sleep 0.1
done
answer=$(curl -fsS -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"email":"paquet@example.fr","action":"purchase","event_id":"deb-1","metadata":{"amount":60}}' \
  "http://127.0.0.1:$port/webhook/behavior") || fail "the installed server did not take the event"
grep -q '"status":"received"' <<<"$answer" || fail "unexpected answer: $answer"
kill "$server"; wait "$server" || true; server=""
[[ $(stat -c '%U' /var/lib/relance/relance.db) == relance ]] || fail "the database is not owned by relance"
count=$(python3 -c 'import sqlite3; print(sqlite3.connect("/var/lib/relance/relance.db").execute("select count(*) from events").fetchone()[0])')
[[ $count == 1 ]] || fail "expected 1 stored event, found $count"
echo "package test passed: installed, checked, served one event as the relance user"
