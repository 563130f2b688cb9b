#!/usr/bin/env python3
"""Makes an upgrade fixture: a small database written by one relance release, and what
that release read back from it, for every later release to open, migrate and serve.

    scripts/make-upgrade-fixture.py --binary target/release/relance --out fixtures/upgrade/schema-11
    # and with a PostgreSQL server (scripts/with-postgres.sh sets the URL):
    scripts/with-postgres.sh python3 scripts/make-upgrade-fixture.py --binary … --out … --postgres

It writes relance.db (SQLite), pg.sql (pg_dump, with --postgres) and expected.json.
The same events go to both backends: contacts with opens, clicks, purchases (which leave
follow-up emails pending for 5 minutes and 1 day), an opt-out and a hard bounce.
"""
import argparse, json, os, socket, sqlite3, subprocess, sys, tempfile, time, urllib.request

CONTACTS = ["anne@example.fr", "bruno@example.fr", "chloe@example.fr", "david@example.fr", "emma@example.fr"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.load(r)


def brevo(event, email, n, **extra):
    body = {"id": 1, "event": event, "email": email, "message-id": f"<fixture-{n}@smtp-relay.mailin.fr>",
            "date": "2026-11-30 10:00:00", "ts_event": 1764496800 + n, "subject": "Vendanges"}
    body.update(extra)
    return body


def events():
    n = 0
    for i, email in enumerate(CONTACTS):
        for _ in range(i + 1):
            n += 1
            yield "/webhook/email", brevo("opened", email, n)
        if i % 2 == 0:
            n += 1
            yield "/webhook/email", brevo("click", email, n, link="https://domaine.example.fr/cuvee")
        yield "/webhook/behavior", {"email": email, "client_code": f"CL{i + 1:03}", "action": "page_visit",
                                    "event_id": f"visit-{i}", "metadata": {"url": "/boutique"}}
    for i in (1, 3):
        yield "/webhook/behavior", {"email": CONTACTS[i], "client_code": f"CL{i + 1:03}", "action": "purchase",
                                    "event_id": f"order-{i}", "metadata": {"amount": 120}}
    n += 1
    yield "/webhook/email", brevo("unsubscribed", CONTACTS[2], n)
    n += 1
    yield "/webhook/email", brevo("hard_bounce", CONTACTS[4], n, reason="unknown user")


def run_release(binary, url):
    port = free_port()
    env = dict(os.environ, RELANCE_LOG="warn", RELANCE_DISPATCH__POLL_INTERVAL_MS="100")
    server = subprocess.Popen([binary, "serve", "--bind", f"127.0.0.1:{port}", "--database", url], env=env)
    try:
        for _ in range(200):
            try:
                get(port, "/webhook/health")
                break
            except OSError:
                time.sleep(0.05)
        for path, body in events():
            post(port, path, body)
        time.sleep(2)  # the immediate actions run; the delayed ones stay pending
        contacts = {email: get(port, f"/api/contacts/{email}") for email in CONTACTS}
    finally:
        server.terminate()
        server.wait(timeout=20)
    return contacts


def summary(contacts, rows):
    """What a later release must read back: each contact's state, and the jobs."""
    out = {}
    for email, c in contacts.items():
        c = c.get("contact", c)
        out[email] = {k: c.get(k) for k in ("client_code", "segment", "score", "tags", "unsubscribed",
                                             "email_invalid", "purchases")}
    return {"contacts": out, **rows}


def sqlite_rows(path):
    conn = sqlite3.connect(path)
    q = lambda sql: [list(r) for r in conn.execute(sql)]
    return {
        "schema": conn.execute("PRAGMA user_version").fetchone()[0],
        "history_rows": conn.execute("SELECT count(*) FROM history").fetchone()[0],
        "events": conn.execute("SELECT count(*) FROM events").fetchone()[0],
        "jobs": q("SELECT rule_id, action_type, state, due_at FROM jobs ORDER BY due_at, rule_id, action_type"),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--postgres", action="store_true", help="also a pg_dump (RELANCE_TEST_DATABASE_URL)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    db = os.path.join(a.out, "relance.db")
    for f in (db, db + "-wal", db + "-shm", db + ".lock"):
        if os.path.exists(f):
            os.remove(f)
    made_at = int(time.time() * 1000)
    contacts = run_release(a.binary, f"sqlite://{db}")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    for f in (db + "-wal", db + "-shm", db + ".lock"):
        if os.path.exists(f):
            os.remove(f)
    version = subprocess.run([a.binary, "--version"], capture_output=True, text=True).stdout.strip()
    expected = {"made_by": version, "made_at_ms": made_at, "sqlite": summary(contacts, sqlite_rows(db))}
    if a.postgres:
        admin = os.environ["RELANCE_TEST_DATABASE_URL"]
        name = f"relance_fixture_{os.getpid()}"
        subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
        url = admin.rsplit("/", 1)[0] + "/" + name
        pg_contacts = run_release(a.binary, url)
        subprocess.run(["pg_dump", "--no-owner", "--no-privileges", "-f", os.path.join(a.out, "pg.sql"), url],
                       check=True)
        q = lambda sql: subprocess.run(["psql", url, "-Atc", sql], check=True, capture_output=True,
                                       text=True).stdout.split("\n")[0]
        jobs = subprocess.run(["psql", url, "-AtF", "\t", "-c",
                               "SELECT rule_id, action_type, state, due_at FROM jobs ORDER BY due_at, rule_id, action_type"],
                              check=True, capture_output=True, text=True).stdout.split("\n")
        rows = {"schema": int(q("SELECT max(version) FROM relance_migrations")),
                "history_rows": int(q("SELECT count(*) FROM history")),
                "events": int(q("SELECT count(*) FROM events")),
                "jobs": [[r.split("\t")[0], r.split("\t")[1], r.split("\t")[2], int(r.split("\t")[3])]
                         for r in jobs if r]}
        expected["postgres"] = summary(pg_contacts, rows)
        subprocess.run(["psql", admin, "-qc", f"DROP DATABASE {name}"], check=True)
    with open(os.path.join(a.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"fixture written to {a.out}: {expected['sqlite']['events']} events, "
          f"{len(expected['sqlite']['jobs'])} jobs, schema {expected['sqlite']['schema']}")


if __name__ == "__main__":
    sys.exit(main())
