"""``dsnparse pipe`` as an MTA runs it: one message on stdin, exit 0 (stored) or 75 (retry).

Exit statuses are those of ``<sysexits.h>``: EX_OK 0, EX_TEMPFAIL 75 (and never another,
not even for a usage error: see ``dsnparse/pipe.py``).  The Exim snippet of
``examples/exim/`` is run here the way Exim's pipe transport would run it (no Exim on this
machine: Debian's exim4 and postfix exclude each other); the Postfix one runs under a real
Postfix in ``tests/test_pipe_postfix.py``.
"""
from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dsnparse.pipe import EX_TEMPFAIL, append_records, null_sender, split_envelope

ROOT = Path(__file__).resolve().parents[1]
BOUNCE = (ROOT / "samples" / "rfc3464" / "01.eml").read_bytes()
NOT_BOUNCE = (ROOT / "samples" / "not-bounce" / "01.eml").read_bytes()
# samples/rfc3464/01.eml: Status 5.1.1 for alice.nobody@receiver.example, hard, code 511
RCPT = "alice.nobody@receiver.example"
MID = "<20260302081407.3F2A1C0042@mta1.sender.example>"
F_LINE = b"From MAILER-DAEMON  Sun Dec  6 08:00:00 2026\n"   # pipe(8) flag F
R_LINE = b"Return-Path: <>\n"                               # pipe(8) flag R


def run(args, data: bytes = BOUNCE, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dsnparse", "pipe", *map(str, args)],
                          input=data, capture_output=True, timeout=timeout)


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def events(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT address, kind, status, source, message_id FROM events "
                         "ORDER BY id").fetchall()


def with_mid(data: bytes, mid: str) -> bytes:
    return data.replace(MID.encode(), f"<{mid}>".encode(), 1)


# --------------------------------------------------------------------------- success

def test_postfix_style_delivery_is_parsed_and_stored(tmp_path):
    out, db = tmp_path / "v.jsonl", tmp_path / "ledger.sqlite3"
    r = run(["-o", out, "--db", db, "--sender", "MAILER-DAEMON", "--queue-id", "4F2A1C",
             f"--recipient=bounces+x@bounces.test"], F_LINE + R_LINE + BOUNCE)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b""
    (rec,) = lines(out)
    assert (rec["source"], rec["kind"], rec["final_recipient"], rec["status"], rec["code"],
            rec["bounce_type"], rec["fault"]) == \
        ("pipe:4F2A1C", "bounce", RCPT, "5.1.1", "511", "hard", "recipient")
    assert rec["envelope_sender"] == "" and rec["envelope_recipients"] == \
        ["bounces+x@bounces.test"]
    assert events(db) == [(RCPT, "bounce", "5.1.1", "pipe:4F2A1C", MID.strip("<>"))]
    # the same bounce again (a retry, a duplicate delivery): the ledger keeps one event
    r = run(["-o", out, "--db", db, "--queue-id", "4F2A1C"], F_LINE + BOUNCE)
    assert r.returncode == 0, r.stderr
    assert len(events(db)) == 1 and len(lines(out)) == 2


def test_envelope_from_the_from_line_and_positional_recipients(tmp_path):
    out = tmp_path / "v.jsonl"
    r = run(["-o", out, "--", "a@bounces.test", "b@bounces.test"],
            b"From <list-owner@example.org> Sun Dec  6 08:00:00 2026\n" + NOT_BOUNCE)
    assert r.returncode == 0, r.stderr
    (rec,) = lines(out)
    assert rec["kind"] == "not_bounce" and rec["source"] == "pipe"
    assert rec["envelope_sender"] == "list-owner@example.org"
    assert rec["envelope_recipients"] == ["a@bounces.test", "b@bounces.test"]


@pytest.mark.parametrize("data, why", [
    (b"", "empty message"),
    (b"\x00\x01\x02 not mail at all \xff\xfe", None),
])
def test_unparseable_input_is_an_error_record_and_exit_0(tmp_path, data, why):
    out, keep = tmp_path / "v.jsonl", tmp_path / "kept"
    r = run(["-o", out, "--keep-dir", keep], data)
    assert r.returncode == 0, r.stderr
    (rec,) = lines(out)
    assert rec["kind"] in ("error", "not_bounce")
    if why:
        assert rec["kind"] == "error" and why in rec["error"]
    # nothing is dropped: the raw message is in the Maildir, named by its SHA-256
    (kept,) = (keep / "new").iterdir()
    assert kept.read_bytes() == data
    assert kept.name == hashlib.sha256(data).hexdigest() + ".eml"


def test_over_max_size_is_an_error_record_and_kept_whole(tmp_path):
    out, keep = tmp_path / "v.jsonl", tmp_path / "kept"
    big = BOUNCE + b"\n" + b"x" * 4000 + b"\n"
    r = run(["-o", out, "--keep-dir", keep, "--max-size", 1000], F_LINE + big)
    assert r.returncode == 0, r.stderr
    (rec,) = lines(out)
    assert rec["kind"] == "error" and "larger than 1000 bytes" in rec["error"]
    (kept,) = (keep / "new").iterdir()
    assert kept.read_bytes() == big                        # whole, without the From line


def test_csv_output_gets_one_header(tmp_path):
    out = tmp_path / "v.csv"
    for mid in ("csv-1@x", "csv-2@x"):
        assert run(["-o", out], with_mid(BOUNCE, mid)).returncode == 0
    rows = out.read_text().splitlines()
    assert rows[0].startswith("source,kind,final_recipient")
    assert len(rows) == 3 and all(r.startswith("pipe,bounce," + RCPT) for r in rows[1:])


def test_keep_dir_with_db_keeps_only_what_the_ledger_lacks(tmp_path):
    db, keep = tmp_path / "l.sqlite3", tmp_path / "kept"
    assert run(["--db", db, "--keep-dir", keep]).returncode == 0
    assert not (keep / "new").exists() or not list((keep / "new").iterdir())
    assert run(["--db", db, "--keep-dir", keep], NOT_BOUNCE).returncode == 0
    assert [p.read_bytes() for p in (keep / "new").iterdir()] == [NOT_BOUNCE]


# --------------------------------------------------------------------------- 75

@pytest.mark.parametrize("args", [
    ["--bogus-option"],
    ["--lock-timeout", "soon"],
    [],                                  # neither --output nor --keep-dir
    ["--db", "{tmp}/l.sqlite3"],         # a ledger alone would drop non-bounces
    ["--policy", "{tmp}/missing.yaml"],
    ["-o", "{tmp}/v.jsonl", "--policy", "{tmp}/p.yaml"],   # a policy without a ledger
])
def test_usage_errors_exit_75_not_64_or_2(tmp_path, args):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "{tmp}/missing.yaml".replace("{tmp}", str(tmp_path)) in args:
        args += ["--db", tmp_path / "l.sqlite3", "-o", tmp_path / "v.jsonl"]
    (tmp_path / "p.yaml").write_text("soft: {count: 2}\n")
    r = run(args)
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert b"exit 75 (EX_TEMPFAIL)" in r.stderr
    assert not (tmp_path / "v.jsonl").exists()


def test_output_that_cannot_be_opened_exits_75(tmp_path):
    (tmp_path / "file").write_text("")
    r = run(["-o", tmp_path / "file" / "v.jsonl"])      # a path under a regular file
    assert r.returncode == EX_TEMPFAIL
    assert b"cannot open the output" in r.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_disk_full_exits_75():
    r = run(["-o", "/dev/full"])                          # every write: ENOSPC
    assert r.returncode == EX_TEMPFAIL
    assert b"No space left on device" in r.stderr


def test_short_write_is_cut_back(tmp_path, monkeypatch):
    """A write that stops half-way (a full disk) leaves no partial record behind."""
    out = tmp_path / "v.jsonl"
    out.write_bytes(b'{"old": 1}\n')
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, b: real(fd, bytes(b)[:7]))
    with pytest.raises(Exception, match="short write"):
        append_records(str(out), b'{"new": 2}\n', b"", 1.0)
    assert out.read_bytes() == b'{"old": 1}\n'


def test_locked_ledger_exits_75_then_stores_once(tmp_path):
    out, db = tmp_path / "v.jsonl", tmp_path / "l.sqlite3"
    assert run(["-o", out, "--db", db], with_mid(BOUNCE, "first@x")).returncode == 0
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        t0 = time.monotonic()
        r = run(["-o", out, "--db", db, "--lock-timeout", "0.5"], with_mid(BOUNCE, "late@x"))
        waited = time.monotonic() - t0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert r.returncode == EX_TEMPFAIL
    assert b"stayed locked for 0.5 s" in r.stderr
    assert waited >= 0.5
    assert len(lines(out)) == 1                           # the ledger first: nothing written
    r = run(["-o", out, "--db", db, "--lock-timeout", "0.5"], with_mid(BOUNCE, "late@x"))
    assert r.returncode == 0, r.stderr
    assert [e[4] for e in events(db)] == ["first@x", "late@x"]
    assert [x["message_id"] for x in lines(out)] == ["<first@x>", "<late@x>"]


def test_locked_output_exits_75_and_the_retry_adds_no_second_event(tmp_path):
    out, db = tmp_path / "v.jsonl", tmp_path / "l.sqlite3"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        r = run(["-o", out, "--db", db, "--lock-timeout", "0.3"])
    finally:
        os.close(fd)
    assert r.returncode == EX_TEMPFAIL
    assert b"stayed locked for 0.3 s" in r.stderr
    assert out.read_bytes() == b""
    assert len(events(db)) == 1                           # stored before the output failed
    assert run(["-o", out, "--db", db]).returncode == 0
    assert len(events(db)) == 1 and len(lines(out)) == 1


def test_concurrent_deliveries_never_interleave(tmp_path):
    """Eight deliveries at once of a bounce whose records are larger than PIPE_BUF (and than
    one page) append whole records: every line parses, none is lost."""
    out = tmp_path / "v.jsonl"
    long_diag = b"550 5.1.1 " + b"no such user here; " * 800
    data = BOUNCE.replace(b"Diagnostic-Code: smtp; ", b"Diagnostic-Code: smtp; " + long_diag, 1)
    procs = [subprocess.Popen([sys.executable, "-m", "dsnparse", "pipe", "-o", str(out)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
             for _ in range(8)]
    results = []

    def feed(p, i):
        results.append((p.communicate(with_mid(data, f"c{i}@x"), timeout=300), p.returncode))

    threads = [threading.Thread(target=feed, args=(p, i)) for i, p in enumerate(procs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [rc for _, rc in results] == [0] * 8, [e for (_, e), _ in results]
    recs = lines(out)
    assert len(out.read_bytes().splitlines()[0]) > 8192
    assert sorted(x["message_id"] for x in recs) == sorted(f"<c{i}@x>" for i in range(8))


# --------------------------------------------------------------------------- helpers

def test_split_envelope_and_null_sender():
    assert split_envelope(F_LINE + b"Subject: x\n\nbody") == ("MAILER-DAEMON", b"Subject: x\n\nbody")
    assert split_envelope(b"Subject: x\n\n") == (None, b"Subject: x\n\n")
    assert [null_sender(s) for s in ("", "<>", "MAILER-DAEMON", "<a@b.c>", "a@b.c", None)] == \
        ["", "", "", "a@b.c", "a@b.c", None]


def test_help_exits_0():
    r = run(["--help"], b"")
    assert r.returncode == 0 and b"EX_TEMPFAIL" in r.stdout
    r = run(["--version"], b"")
    assert r.returncode == 0 and r.stdout.startswith(b"dsnparse ")


# --------------------------------------------------------------------------- Exim

def exim_command(transport: str, variables: dict) -> list[str]:
    """The argv Exim's pipe transport runs for ``command =`` (split into arguments first,
    quotes honoured, then each argument expanded: Exim spec, "The pipe transport")."""
    m = re.search(r"^\s*command\s*=\s*(.+)$", transport, re.M)
    argv = shlex.split(m.group(1))
    names = sorted(variables, key=len, reverse=True)
    out = []
    for a in argv:
        for n in names:
            a = a.replace("$" + n, variables[n])
        out.append(a)
    return out


def test_exim_router_and_transport_snippets(tmp_path):
    router = (ROOT / "examples" / "exim" / "router").read_text()
    transport = (ROOT / "examples" / "exim" / "transport").read_text()
    # the router hands the bounce domain to this transport, which treats 75 as temporary
    assert re.search(r"^\s*transport\s*=\s*dsnparse_pipe\s*$", router, re.M)
    assert re.search(r"^dsnparse_pipe:\s*$", transport, re.M)
    assert re.search(r"^\s*driver\s*=\s*pipe\s*$", transport, re.M)
    temp = re.search(r"^\s*temp_errors\s*=\s*(\S+)", transport, re.M).group(1).split(":")
    assert "75" in temp
    state = tmp_path / "state"
    argv = exim_command(transport, {"message_exim_id": "1tJxYz-000AbC-7Q", "sender_address": "",
                                    "local_part": "bounces+7", "domain": "bounces.example.org"})
    assert argv[0] == "/usr/local/bin/dsnparse" and argv[1] == "pipe"
    cache = os.environ.get("DSNPARSE_CACHE_DIR") or str(state / "cache")  # (the run's cache)
    argv = [a.replace("/var/lib/dsnparse/cache", cache).replace("/var/lib/dsnparse", str(state))
            for a in argv[1:]]
    # Exim's default message_prefix, then return_path_add's header
    data = b"From MAILER-DAEMON Sun Dec 06 08:00:00 2026\nReturn-path: <>\n" + BOUNCE
    r = subprocess.run([sys.executable, "-m", "dsnparse", *argv], input=data,
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (rec,) = lines(state / "verdicts.jsonl")
    assert (rec["source"], rec["final_recipient"], rec["envelope_sender"],
            rec["envelope_recipients"]) == \
        ("pipe:1tJxYz-000AbC-7Q", RCPT, "", ["bounces+7@bounces.example.org"])
    assert events(state / "ledger.sqlite3")[0][:2] == (RCPT, "bounce")


def _many_recipients(n: int) -> bytes:
    """A DSN (RFC 3464) with ``n`` failed recipients: records longer than a pipe's buffer."""
    fields = "".join(f"\nFinal-Recipient: rfc822; user{i}@gone.example\nAction: failed\n"
                     f"Status: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 user{i} unknown\n"
                     for i in range(n))
    return (b"From: MAILER-DAEMON@mx.example\nTo: a@sender.example\nSubject: Undelivered\n"
            b"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status;"
            b" boundary=b\n\n--b\nContent-Type: text/plain\n\nfailed\n--b\n"
            b"Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n"
            + fields.encode() + b"\n--b--\n")


def test_records_to_a_reader_that_goes_away_are_a_temporary_failure(tmp_path):
    # pipe -o -: the reader closes after the first bytes (`| head -c1`); the records did not
    # all arrive, so the MTA must keep the message (75), not count it delivered
    r, w = os.pipe()
    p = subprocess.Popen([sys.executable, "-m", "dsnparse", "pipe", "-o", "-"],
                         stdin=subprocess.PIPE, stdout=w, stderr=subprocess.PIPE)
    os.close(w)

    def head_c1():
        os.read(r, 1)
        os.close(r)
    reader = threading.Thread(target=head_c1)
    reader.start()
    _, err = p.communicate(_many_recipients(1500), timeout=120)
    reader.join(10)
    assert p.returncode == EX_TEMPFAIL, err
    assert b"cannot write standard output" in err


def test_an_unwritable_stderr_still_gives_75_not_a_crash(tmp_path):
    with open("/dev/full", "wb") as full:
        p = subprocess.run([sys.executable, "-m", "dsnparse", "pipe", "-o",
                            str(tmp_path / "no" / "such" / "dir.jsonl")], input=BOUNCE,
                           stdout=subprocess.PIPE, stderr=full, timeout=120)
    assert p.returncode == EX_TEMPFAIL


def test_parse_to_a_full_disk_or_a_closed_stdout_fails_with_2_not_0():
    # /dev/full takes no byte (ENOSPC) — as a full disk after its first 64 KiB would; the
    # records of 1,500 recipients must not be reported written (exit 0) when they are not
    big = _many_recipients(1500)
    with open("/dev/full", "wb") as full:
        p = subprocess.run([sys.executable, "-m", "dsnparse", "parse", "-"], input=big,
                           stdout=full, stderr=subprocess.PIPE, timeout=120)
    assert p.returncode == 2 and b"writing standard output failed" in p.stderr
    # standard output closed (>&-): the same, and no traceback
    p = subprocess.run([sys.executable, "-m", "dsnparse", "parse", "-"], input=BOUNCE,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120,
                       preexec_fn=lambda: os.close(1))
    assert p.returncode == 2 and b"Traceback" not in p.stderr, p.stderr
    assert b"writing standard output failed" in p.stderr


def test_options_are_not_abbreviated(tmp_path):
    # --cache-dir is read before argparse (the code cache): "--cache" must not mean it to
    # argparse only, splitting the caches between two directories
    r = run(["--cache", tmp_path / "c", "-o", tmp_path / "v.jsonl"])
    assert r.returncode == EX_TEMPFAIL and b"unrecognized arguments: --cache" in r.stderr
    assert not (tmp_path / "c").exists() and not (tmp_path / "v.jsonl").exists()
