#!/usr/bin/env python3
"""The README is executable: run its quick start as a new user would, from its own text.

Extracts the `sh` blocks of "## Quick start" (not a copy of them), runs them on a fresh
database (RELANCE_DATABASE_URL in a temp dir, RELANCE_BIND on a free port: the commands
themselves are the README's, with `localhost:8080` pointed at that port), and checks the
answers against what the README shows: the score, the five actions in order, `duplicate`
the second time, explain naming the rules. Then installs the binary with the README's
`cargo install` line (into a temp root, reusing target/) and checks that it runs.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fail(msg):
    print(f"readme-test: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def section(text, title):
    start = text.find(f"\n{title}\n")
    if start < 0:
        fail(f"no section {title!r} in README.md")
    end = text.find("\n## ", start + len(title) + 2)
    return text[start:end if end > 0 else len(text)]


def blocks(text, lang):
    return [b.strip("\n") for b in re.findall(rf"```{lang}\n(.*?)```", text, re.S)]


def commands(block):
    """One command per line, backslash continuations joined."""
    return [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip() and not c.startswith("#")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, env, port):
    cmd = cmd.replace("localhost:8080", f"localhost:{port}")
    done = subprocess.run(cmd, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        fail(f"`{cmd}` exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def main():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    quick = section(readme, "## Quick start")
    sh = blocks(quick, "sh")
    shown = blocks(quick, "json")
    if len(sh) < 3 or not shown:
        fail("the quick start should have a serve command, a purchase, the explain commands and the answer")
    serve, purchase, explain = commands(sh[0]), commands(sh[1]), commands(sh[2])
    if len(serve) != 1 or "serve" not in serve[0]:
        fail(f"the first command should start the server: {serve}")

    # What the README shows: the score and the (rule_id, action_type) of each action, in order.
    answer_text = shown[0]
    shown_score = int(re.search(r'"score":(\d+)', answer_text).group(1))
    shown_actions = re.findall(r'\{"rule_id":"(\w+)",(?:"trigger":"\w+",)?"action_type":"(\w+)"', answer_text)
    if len(shown_actions) != 5:
        fail(f"expected five actions in the README's answer, read {shown_actions}")

    work = tempfile.mkdtemp(prefix="relance-readme-")
    port = free_port()
    env = dict(os.environ, RELANCE_DATABASE_URL=f"sqlite://{work}/relance.db", RELANCE_BIND=f"127.0.0.1:{port}",
               RELANCE_LOG="warn")
    for k in ("RELANCE_CONFIG", "RELANCE_RULES", "RELANCE_WEBHOOK_TOKEN", "RELANCE_ADMIN_TOKEN"):
        env.pop(k, None)
    log = open(os.path.join(work, "server.log"), "w")
    server = subprocess.Popen(serve[0], shell=True, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.time() + 900  # a first release build on two cores
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/webhook/health", timeout=2) as r:
                    if json.load(r)["status"] == "healthy":
                        break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                fail("the server did not start: " + open(os.path.join(work, "server.log")).read()[-3000:])
            time.sleep(0.5)

        first = json.loads(run(purchase[0], env, port))
        if first["duplicate"] is not False or first["contact"]["score"] != shown_score:
            fail(f"first purchase: expected score {shown_score}, duplicate false; got {first}")
        got = [(a["rule_id"], a["action_type"]) for a in first["actions"]]
        if got != [tuple(a) for a in shown_actions]:
            fail(f"actions differ from the README's: {got} vs {shown_actions}")
        statuses = [a["status"] for a in first["actions"]]
        if statuses != ["applied", "scheduled", "scheduled", "scheduled", "scheduled"]:
            fail(f"statuses: {statuses}")
        if '"duplicate": true' not in quick:
            fail("the README no longer says what the second send answers")
        again = json.loads(run(purchase[0], env, port))
        if again["duplicate"] is not True or again["event_id"] != first["event_id"] or again["actions"]:
            fail(f"the second send should be a duplicate that changes nothing: {again}")

        api = json.loads(run(explain[0], env, port))
        rules = [c["rule_id"] for c in api["score"]["changes"]]
        if api["score"]["current"] != shown_score or rules != ["rule_purchase"]:
            fail(f"explain (API): {api['score']}")
        pending = {p["rule_id"] for p in api["pending_actions"]}
        if pending != {"rule_purchase", "rule_high_score"}:
            fail(f"explain (API) pending actions name {pending}")
        text = run(explain[1], env, port)
        for needle in ("score 100", "rule_purchase", "rule_high_score"):
            if needle not in text:
                fail(f"`{explain[1]}` does not say {needle!r}:\n{text}")
        print(f"readme-test: quick start OK (score {shown_score}, {len(got)} actions, duplicate, explain)")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    # "Getting the relance command": the README's install line, into a temp root.
    install = commands(blocks(section(readme, "### Getting the `relance` command"), "sh")[0])
    if len(install) != 1 or not install[0].startswith("cargo install"):
        fail(f"expected one cargo install line: {install}")
    root = os.path.join(work, "install")
    env_install = dict(env, CARGO_TARGET_DIR=os.path.join(ROOT, "target"))
    run(f"{install[0]} --root {root} --quiet", env_install, port)
    binary = os.path.join(root, "bin", "relance")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True)
    score = subprocess.run([binary, "score", "--rfm", "3.5", "--engagement", "5", "--purchases", "3",
                            "--days-since-purchase", "10"], capture_output=True, text=True)
    if version.returncode != 0 or not version.stdout.startswith("relance ") or score.stdout.strip() != "100":
        fail(f"the installed binary: {version.stdout!r} {version.stderr!r} / score {score.stdout!r}")
    print(f"readme-test: installed binary OK ({version.stdout.strip()})")


if __name__ == "__main__":
    main()
