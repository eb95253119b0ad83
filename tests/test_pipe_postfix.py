"""``dsnparse pipe`` behind a real Postfix (Debian's ``postfix``), started by this module.

A private instance (``tests/postfix_server.py``: its own configuration directory, queue and
data directories under a temporary directory, smtpd on a free loopback port) delivers the
bounce domain to the ``dsnparse`` pipe(8) service of ``examples/postfix/master.cf`` (the
transport table of ``examples/postfix/transport``).  Bounces are sent with ``smtplib``; the
test reads the output and the ledger.  Then the ledger is held locked past ``--lock-timeout``,
and later made read-only: each time the message must stay queued (pipe exited 75,
EX_TEMPFAIL: ``postqueue -p`` lists it with dsnparse's reason) and be delivered, once, by
``postqueue -f`` when the ledger is back.

A third case kills ``dsnparse pipe`` (SIGKILL) after it stored the ledger event and while it
waits for the output's lock: Postfix defers the message ("died with signal 9"), and the
retry stores the record once while the ledger keeps one event.

Needs root (Postfix starts as root; pipe(8) runs dsnparse as ``nobody``), ``postfix``,
``setfacl`` and ``setpriv``: ``bash .ci/setup.d/30-postfix.sh``.  Skipped with the reason
when they are missing, except under ``DSNPARSE_CI=1`` where that is a failure.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import signal
import time
from pathlib import Path

import pytest

import postfix_server as ps

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
DOMAIN = "bounces.test"
CI = os.environ.get("DSNPARSE_CI") == "1"


def _unavailable(why: str):
    if CI:
        pytest.fail(f"DSNPARSE_CI=1: the Postfix test cannot run: {why}")
    pytest.skip(f"the Postfix test cannot run: {why}")


def _dsnparse_program() -> str:
    exe = Path(sys.executable).parent / "dsnparse"
    return str(exe)


@pytest.fixture(scope="module")
def postfix():
    why = ps.why_not()
    if why:
        _unavailable(why)
    program = _dsnparse_program()
    if not os.access(program, os.X_OK):
        _unavailable(f"{program} is not installed (pip install -e .)")
    granted = ps.grant_search(ps.runtime_paths(program))
    base = tempfile.mkdtemp(prefix="dsnparse-postfix-")
    inst = ps.PostfixInstance(base, ps.free_port(), DOMAIN, program)
    try:
        r = ps.as_pipe_user([program, "--version"], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            _unavailable(f"user {ps.PIPE_USER} cannot run {program}: {r.stderr.strip()}")
        try:
            inst.start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            _unavailable(f"the private Postfix did not start: {e}")
        yield inst
    finally:
        inst.stop()
        ps.revoke_search(granted)
        shutil.rmtree(base, ignore_errors=True)


def _send(inst, sample: str, rcpt: str, sender: str = "", message_id: str = "") -> bytes:
    data = (SAMPLES / sample).read_bytes()
    if message_id:  # the bounce's own Message-ID (the first one), so the ledger must store it
        data = data.replace(b"<20260302081407.3F2A1C0042@mta1.sender.example>",
                            f"<{message_id}>".encode(), 1)
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=60) as s:
        refused = s.sendmail(sender, [rcpt], data)
    assert refused == {}
    return data


def _records(inst) -> list[dict]:
    path = inst.state / "verdicts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _queue_id(inst, rcpt: str, status: str, count: int = 1) -> list[str]:
    lines = inst.wait_log(rf"postfix/pipe\[\d+\]: \w+: to=<{re.escape(rcpt)}>.*"
                          rf"status={status}", count, timeout=120)
    return [re.search(r"\]: (\w+): to=", ln).group(1) for ln in lines]


def _ledger_events(inst) -> list[dict]:
    """The ledger's events, read as the pipe user (a root connection could leave root-owned
    -wal/-shm files the pipe user cannot write)."""
    code = ("import json, sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1])\n"
            "cols = ('address', 'kind', 'status', 'source', 'message_id', 'fault')\n"
            "for row in c.execute(f'SELECT {\", \".join(cols)} FROM events ORDER BY id'):\n"
            "    print(json.dumps(dict(zip(cols, row))))\n")
    r = ps.as_pipe_user([sys.executable, "-c", code, str(inst.state / "ledger.sqlite3")],
                        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.splitlines()]


def test_postfix_delivers_bounces_to_dsnparse_pipe(postfix):
    """Three messages through smtpd → qmgr → pipe(8) → dsnparse pipe: every one stored, the
    source names Postfix's queue id, the envelope comes from the F flag and ${recipient}."""
    _send(postfix, "rfc3464/01.eml", f"bounces+a@{DOMAIN}")
    _send(postfix, "mta/exim/01.eml", f"bounces+b@{DOMAIN}")
    _send(postfix, "not-bounce/01.eml", f"bounces+c@{DOMAIN}", sender="someone@example.net")
    qa = _queue_id(postfix, f"bounces+a@{DOMAIN}", "sent")[0]
    qb = _queue_id(postfix, f"bounces+b@{DOMAIN}", "sent")[0]
    qc = _queue_id(postfix, f"bounces+c@{DOMAIN}", "sent")[0]
    recs = _records(postfix)
    by_source = {}
    for r in recs:
        by_source.setdefault(r["source"], []).append(r)
    assert set(by_source) >= {f"pipe:{qa}", f"pipe:{qb}", f"pipe:{qc}"}
    (a,) = by_source[f"pipe:{qa}"]
    # samples/rfc3464/01.eml: Status: 5.1.1 for alice.nobody@receiver.example
    assert (a["kind"], a["final_recipient"], a["status"], a["code"], a["fault"]) == \
        ("bounce", "alice.nobody@receiver.example", "5.1.1", "511", "recipient")
    assert a["envelope_sender"] == ""                      # <>: Postfix wrote MAILER-DAEMON
    assert a["envelope_recipients"] == [f"bounces+a@{DOMAIN}"]
    expected_b = json.loads((SAMPLES / "mta/exim/01.expected.json").read_text())
    got_b = by_source[f"pipe:{qb}"]
    want = expected_b["verdicts"] if "verdicts" in expected_b else expected_b
    assert [r["final_recipient"] for r in got_b] == [v["final_recipient"] for v in want]
    assert [r["status"] for r in got_b] == [v["status"] for v in want]
    (c,) = by_source[f"pipe:{qc}"]
    assert c["kind"] == "not_bounce" and c["envelope_sender"] == "someone@example.net"
    # the ledger holds the bounces' events (not the non-bounce), each from its queue id
    events = _ledger_events(postfix)
    assert {"alice.nobody@receiver.example"} <= {e["address"] for e in events}
    assert {e["source"] for e in events} == {f"pipe:{qa}", f"pipe:{qb}"}
    # the non-bounce has no ledger event: its raw message is in --keep-dir, as sent
    kept = list((postfix.state / "kept" / "new").iterdir())
    assert len(kept) == 1
    assert b"Return-Path: <someone@example.net>" in kept[0].read_bytes()
    assert postfix.queue() == []


class _LedgerLock:
    """A process (the pipe user's) holding the ledger's write lock until stopped."""

    def __init__(self, db: Path):
        code = ("import sqlite3, sys\n"
                "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                "c.execute('BEGIN EXCLUSIVE')\n"
                "print('locked', flush=True)\n"
                "sys.stdin.read()\n"
                "c.execute('ROLLBACK')\n")
        pw = ps.pwd.getpwnam(ps.PIPE_USER)
        self.proc = subprocess.Popen(
            ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
             sys.executable, "-c", code, str(db)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def _retry_once_back(postfix, rcpt: str, message_id: str, deferred_reason: str, make_bad,
                     make_good):
    """Send a new bounce while the ledger is bad: it must stay queued with dsnparse's reason
    and nothing stored; after make_good and `postqueue -f` it is delivered and stored
    exactly once (one record, one ledger event)."""
    before = len(_records(postfix))
    make_bad()
    try:
        _send(postfix, "rfc3464/01.eml", rcpt, message_id=message_id)
        qid = _queue_id(postfix, rcpt, "deferred")[0]
        listing = postfix.queue_listing()
        assert qid in postfix.queue()
        assert deferred_reason in " ".join(listing.split()), listing
        assert len(_records(postfix)) == before            # nothing half-stored
        assert not [e for e in _ledger_events(postfix) if e["message_id"] == message_id]
    finally:
        make_good()
    postfix.flush()
    assert _queue_id(postfix, rcpt, "sent")[0] == qid
    assert postfix.queue() == []
    new = _records(postfix)[before:]
    assert [(r["source"], r["final_recipient"], r["message_id"]) for r in new] == \
        [(f"pipe:{qid}", "alice.nobody@receiver.example", f"<{message_id}>")]
    events = [e for e in _ledger_events(postfix) if e["message_id"] == message_id]
    assert [(e["address"], e["kind"], e["status"], e["source"]) for e in events] == \
        [("alice.nobody@receiver.example", "bounce", "5.1.1", f"pipe:{qid}")]


def test_locked_ledger_keeps_the_message_queued_until_it_is_free(postfix):
    """The ledger's write lock held past --lock-timeout: exit 75, the message stays in
    Postfix's queue (deferred, with dsnparse's reason); delivered once after the lock goes."""
    db = postfix.state / "ledger.sqlite3"
    assert db.exists()
    lock = {}

    def bad():
        lock["l"] = _LedgerLock(db)

    def good():
        lock["l"].release()

    _retry_once_back(postfix, f"bounces+locked@{DOMAIN}", "locked-1@mta1.sender.example",
                     "stayed locked", bad, good)


def test_unwritable_ledger_keeps_the_message_queued_until_it_is_back(postfix):
    """The ledger file made read-only: exit 75, the message stays queued; delivered once
    after its mode is restored."""
    db = postfix.state / "ledger.sqlite3"
    mode = db.stat().st_mode & 0o777

    def back():  # SQLite gives a -wal/-shm it creates the mode of the database file: the
        for f in postfix.state.glob("ledger.sqlite3*"):   # operator restores all three
            os.chmod(f, mode)

    _retry_once_back(postfix, f"bounces+readonly@{DOMAIN}", "readonly-1@mta1.sender.example",
                     "cannot record in the ledger", lambda: os.chmod(db, 0o444), back)


def _pids_of(marker: bytes) -> list[int]:
    """Processes whose command line holds ``marker`` (the test's own Postfix's children)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker in (d / "cmdline").read_bytes():
                    out.append(int(d.name))
            except OSError:
                pass
    return out


def test_pipe_killed_after_the_ledger_is_retried_and_stored_once(postfix):
    """SIGKILL between the two stores (the ledger event committed, the output not written):
    Postfix defers the message; the retry appends one record and adds no second event."""
    rcpt, mid = f"bounces+killed@{DOMAIN}", "killed-1@mta1.sender.example"
    out = postfix.state / "verdicts.jsonl"
    before = len(_records(postfix))
    fd = os.open(out, os.O_WRONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)           # the pipe will wait here (--lock-timeout 10)
    try:
        _send(postfix, "rfc3464/01.eml", rcpt, message_id=mid)
        # wait (as the pipe user) until the event is in the ledger: pipe is then at the lock
        code = ("import sqlite3, sys, time\n"
                "t = time.monotonic() + 120\n"
                "while time.monotonic() < t:\n"
                "    c = sqlite3.connect(sys.argv[1])\n"
                "    n = c.execute('SELECT count(*) FROM events WHERE message_id=?',"
                " (sys.argv[2],)).fetchone()[0]\n"
                "    c.close()\n"
                "    if n:\n"
                "        sys.exit(0)\n"
                "    time.sleep(0.05)\n"
                "sys.exit(1)\n")
        r = ps.as_pipe_user([sys.executable, "-c", code, str(postfix.state / "ledger.sqlite3"),
                             mid], timeout=180)
        assert r.returncode == 0, "the pipe never stored the ledger event"
        pids = _pids_of(f"--recipient={rcpt}".encode())
        assert len(pids) == 1, pids
        os.kill(pids[0], signal.SIGKILL)
        qid = _queue_id(postfix, rcpt, "deferred")[0]
        line = postfix.wait_log(rf"{qid}: to=<{re.escape(rcpt)}>.*status=deferred")[0]
        assert "signal 9" in line, line
        assert len(_records(postfix)) == before
    finally:
        os.close(fd)
    postfix.flush()
    assert _queue_id(postfix, rcpt, "sent")[0] == qid
    new = _records(postfix)[before:]
    assert [(r["source"], r["message_id"]) for r in new] == [(f"pipe:{qid}", f"<{mid}>")]
    events = [e for e in _ledger_events(postfix) if e["message_id"] == mid]
    assert [(e["address"], e["source"]) for e in events] == \
        [("alice.nobody@receiver.example", f"pipe:{qid}")]
    assert postfix.queue() == []
