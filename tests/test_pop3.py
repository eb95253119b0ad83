"""`dsnparse pop3` against Dovecot's POP3 on loopback (tests/dovecot_server.py).

Each test has a maildrop (a POP3 user) of its own.  The messages are the project's samples
(samples/*/NN.eml), appended over IMAP in order, so message N of the maildrop is the N-th
file and its verdict can be compared with `dsnparse parse` of that file.  Crash tests run
the command as a subprocess and use the ``DSNPARSE_POP3_TEST_KILL=N:POINT`` hook.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from dovecot_server import start_or_skip

REPO = Path(__file__).resolve().parents[1]
FILES = sorted((REPO / "samples").glob("*/[0-9]*.eml"))


@pytest.fixture(scope="module")
def server():
    srv = start_or_skip(pop3=True, users=10)
    yield srv
    srv.close()


@pytest.fixture
def work():
    d = Path(tempfile.mkdtemp(prefix="dsnpop-w-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def maildrop(server, files) -> str:
    user = server.new_user()
    server.append(user, [f if isinstance(f, bytes) else f.read_bytes() for f in files])
    return user


def numbered(n: int) -> list[bytes]:
    """``n`` distinct messages: the samples in turn, each with an ``X-Test-Seq`` header."""
    return [b"X-Test-Seq: %d\r\n" % i + FILES[i % len(FILES)].read_bytes() for i in range(n)]


def cli_args(server, user, work, port="pop3s", extra=()):
    args = ["--host", server.host, "--port", str(server.ports[port]), "--user", user,
            "--state", str(work / "state.db"), "-o", str(work / "out.jsonl"), "--no-progress",
            "--ca-file", server.ca]
    return args + list(extra)


def run_cli(server, user, work, extra=(), port="pop3s", **env):
    e = dict(os.environ, DSNPARSE_POP3_PASSWORD=server.users[user],
             PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    e.pop("DSNPARSE_POP3_TEST_KILL", None)
    e.update(env)
    return subprocess.run([sys.executable, "-m", "dsnparse.pop3_cli",
                           *cli_args(server, user, work, port, extra)],
                          env=e, capture_output=True, text=True, timeout=180)


def records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def groups(recs) -> Counter:
    """source → number of separate groups of records (1 = stored once)."""
    c, last = Counter(), None
    for r in recs:
        if r["source"] != last:
            c[r["source"]] += 1
            last = r["source"]
    return c


def lost_and_repeated(recs, uidls) -> tuple[int, int]:
    """Messages (by unique-id) with no record, and extra groups of records."""
    g = groups(recs)
    got = {s.rsplit(";UIDL=", 1)[1] for s in g}
    assert got <= set(uidls), "records of messages that were never in the maildrop"
    return len(set(uidls) - got), sum(n - 1 for n in g.values())


def parse_reference(files, work) -> dict[str, list[dict]]:
    out = work / "ref.jsonl"
    subprocess.run([sys.executable, "-m", "dsnparse", "parse", "--format", "jsonl", "-o",
                    str(out), *map(str, files)], capture_output=True, timeout=180,
                   env=dict(os.environ, PYTHONPATH=str(REPO)))
    by: dict[str, list[dict]] = {}
    for r in records(out):
        by.setdefault(r["source"], []).append(r)
    return by


def strip(rs):
    return [{k: v for k, v in r.items() if k not in ("source", "error")} for r in rs]


def test_all_messages_once_equal_to_parse_then_delete(server, work):
    files = FILES[:24]
    user = maildrop(server, files)
    on_server = server.uidls(user)
    uidls = list(on_server)                     # UIDL order = message order = file order
    p = run_cli(server, user, work, ["--batch-size", "7"])
    assert p.returncode == 0, p.stderr
    recs = records(work / "out.jsonl")
    assert lost_and_repeated(recs, uidls) == (0, 0)
    ref = parse_reference(files, work)
    got: dict[str, list[dict]] = {}
    for r in recs:
        got.setdefault(r["source"].rsplit(";UIDL=", 1)[1], []).append(r)
    assert [f.name for u, f in zip(uidls, files) if strip(got[u]) != strip(ref[str(f)])] == []
    assert recs[0]["source"].startswith(
        f"pop://{user}@127.0.0.1:{server.ports['pop3s']}/;UIDL=")
    kinds = {u: got[u][0]["kind"] for u in uidls}
    bounces = {u for u, k in kinds.items() if k in ("bounce", "delay")}
    assert 0 < len(bounces) < len(files)
    # without --delete nothing leaves the server, and a rerun reads and writes nothing
    assert server.uidls(user) == on_server
    p = run_cli(server, user, work)
    assert p.returncode == 0 and "read 0," in p.stderr and "skipped 24" in p.stderr
    assert records(work / "out.jsonl") == recs
    # --delete: the stored bounces go, without being read again
    p = run_cli(server, user, work, ["--delete"])
    assert p.returncode == 0 and "read 0," in p.stderr, p.stderr
    assert f"deleted {len(bounces)}" in p.stderr
    assert set(server.uidls(user)) == set(uidls) - bounces
    p = run_cli(server, user, work, ["--delete", "--delete-other"])
    assert p.returncode == 0, p.stderr
    assert server.uidls(user) == {}
    assert records(work / "out.jsonl") == recs


def committed(work) -> set[str]:
    """Unique-ids whose result the state file holds."""
    import sqlite3
    db = sqlite3.connect(work / "state.db")
    try:
        return {u for u, in db.execute("SELECT uidl FROM pop3_messages")}
    finally:
        db.close()


KILLS = {
    # between messages, after the records are written, after the state commit
    "keep": ["5:parsed", "8:written", "3:committed", "12:parsed", "4:written"],
    # and during --delete: after DELE (no QUIT: the server keeps them), after QUIT
    "delete": ["5:parsed", "3:deleted", "8:written", "4:committed", "9:deleted", "1:quit"],
}


@pytest.mark.parametrize("mode", ["keep", "delete"])
def test_sigkill_at_several_points_loses_and_repeats_nothing(server, work, mode):
    user = maildrop(server, numbered(30))
    uidls = list(server.uidls(user))
    extra = ["--batch-size", "3"] + (["--delete", "--delete-other"] if mode == "delete" else [])
    for k in KILLS[mode]:
        p = run_cli(server, user, work, extra, DSNPARSE_POP3_TEST_KILL=k)
        assert p.returncode == -signal.SIGKILL, (k, p.stderr)
        recs = records(work / "out.jsonl")
        lost_and_repeated(recs, uidls)                          # nothing foreign
        # a message gone from the server has its record in the output and in the state
        gone = set(uidls) - set(server.uidls(user, bodies=False))
        assert gone <= {r["source"].rsplit(";UIDL=", 1)[1] for r in recs} & committed(work)
    p = run_cli(server, user, work, extra)
    assert p.returncode == 0, p.stderr
    lost, repeated = lost_and_repeated(records(work / "out.jsonl"), uidls)
    print(f"\npop3 kills ({mode}): messages {len(uidls)}, kills {len(KILLS[mode])}, "
          f"lost {lost}, repeated {repeated}")
    assert (lost, repeated) == (0, 0)
    assert list(server.uidls(user, bodies=False)) == ([] if mode == "delete" else uidls)


def test_starttls_plain_csv_and_long_lines(server, work):
    long_line = b"X-Long: " + b"a" * 5000 + b"\r\n"
    msg = (REPO / "samples" / "rfc3464" / "01.eml").read_bytes()
    user = maildrop(server, [msg, FILES[1], FILES[2]])
    server.append(user, [long_line + msg])
    uidls = list(server.uidls(user))
    out = work / "out.csv"
    p = run_cli(server, user, work, ["--starttls", "-o", str(out), "--limit", "2"],
                port="pop3")
    assert p.returncode == 0, p.stderr
    p = run_cli(server, user, work, ["--insecure-plain", "-o", str(out)], port="pop3")
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(out.open(newline="")))
    assert out.read_text().count("source,kind,") == 1
    assert {r["source"].rsplit(";UIDL=", 1)[1] for r in rows} == set(uidls)
    assert all(n == 1 for n in groups(rows).values())
    # the message with a 5000-octet header line is parsed like the same message without it
    first = [r for r in rows if r["source"].endswith(uidls[0])]
    last = [r for r in rows if r["source"].endswith(uidls[3])]
    assert strip(first) == strip(last) and first[0]["kind"] == "bounce"
    # plain POP3 without --insecure-plain or --starttls is not attempted: POP3S is expected
    p = run_cli(server, user, work, [], port="pop3")
    assert p.returncode == 2 and "TLS" in p.stderr


def test_refusals_exit_2_and_nothing_changed(server, work):
    user = maildrop(server, FILES[:4])
    before = server.uidls(user)
    args = ["--delete", "--delete-other"]
    # untrusted certificate (no --ca-file)
    e = dict(os.environ, DSNPARSE_POP3_PASSWORD=server.users[user], PYTHONPATH=str(REPO))
    a = [x for x in cli_args(server, user, work, "pop3s", args)]
    i = a.index("--ca-file")
    del a[i:i + 2]
    p = subprocess.run([sys.executable, "-m", "dsnparse.pop3_cli", *a], env=e,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "not trusted" in p.stderr, p.stderr
    assert not (work / "state.db").exists() and not (work / "out.jsonl").exists()
    # usage errors
    p = run_cli(server, user, work, ["--delete-other"])
    assert p.returncode == 2 and "--delete-other needs --delete" in p.stderr
    p = run_cli(server, user, work, ["--password", "x"])
    assert p.returncode == 2
    # a dry run reads and reports, and changes nothing (no state file either)
    p = run_cli(server, user, work, ["--dry-run"])
    assert p.returncode == 0 and "read 4," in p.stderr, p.stderr
    assert not (work / "state.db").exists()
    (work / "out.jsonl").unlink()
    # wrong password (last: Dovecot delays later logins from this IP; restarted after)
    try:
        p = run_cli(server, user, work, args, DSNPARSE_POP3_PASSWORD="wrong")
        assert p.returncode == 2 and f"login as {user}" in p.stderr, p.stderr
        assert "Traceback" not in p.stderr
        assert not (work / "state.db").exists() and not (work / "out.jsonl").exists()
    finally:
        server.stop()
        server.run()
    assert server.uidls(user) == before
    assert records(work / "out.jsonl") == []


def test_db_records_bounces_in_the_ledger(server, work):
    samples = REPO / "samples" / "rfc3464"
    user = maildrop(server, [samples / "01.eml", samples / "02.eml"])
    db = work / "ledger.sqlite3"
    e = dict(os.environ, DSNPARSE_POP3_PASSWORD=server.users[user], PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", "dsnparse", "pop3",
                        *cli_args(server, user, work, "pop3s", ["--db", str(db), "--delete"])],
                       env=e, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    from dsnparse.ledger import Ledger
    with Ledger(db) as led:
        assert led.is_suppressed("alice.nobody@receiver.example")      # 5.1.1, hard
        assert not led.is_suppressed("bob@full.example")                # one soft bounce
    assert server.uidls(user) == {}


def test_server_stopped_mid_run_exit_1_then_rerun_completes(server, work):
    """A connection lost in the middle: what was stored stays stored, nothing is deleted
    (no QUIT), exit status 1; the rerun finishes with one record per message."""
    from dsnparse.sources import pop3

    user = maildrop(server, numbered(12))
    uidls = list(server.uidls(user, bodies=False))
    o = pop3.Pop3Options(host=server.host, port=server.ports["pop3s"], user=user,
                         password=server.users[user], ca_file=server.ca, batch_size=3,
                         delete=True, delete_other=True, state_path=str(work / "s.db"),
                         timeout=10, pipelining=False)     # the other tests pipeline RETR
    out = work / "out.jsonl"
    stopped = []

    def on_stored(report, source):
        if not stopped:
            stopped.append(source)
            server.stop()
    try:
        s = pop3.run(o, str(out), on_stored=on_stored)
    finally:
        server.run()
    assert s.exit_status == 1 and not s.complete and s.deleted == 0
    assert len(groups(records(out))) == 3                  # the first batch, stored
    assert list(server.uidls(user, bodies=False)) == uidls  # nothing deleted
    s = pop3.run(o, str(out))
    assert s.exit_status == 0 and s.read == 9 and s.deleted == 12, s.line()
    assert lost_and_repeated(records(out), uidls) == (0, 0)
    assert server.uidls(user, bodies=False) == {}
