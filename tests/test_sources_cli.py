"""Sources (files, directories, mbox, Maildir, stdin) and the `dsnparse parse` command."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, SAMPLES
from dsnparse.cli import main
from dsnparse.sources import iter_messages, parse_path

S1 = (SAMPLES / "rfc3464" / "01.eml").read_bytes()
S2 = (SAMPLES / "rfc3464" / "02.eml").read_bytes()
NB = (SAMPLES / "not-bounce" / "01.eml").read_bytes()


def run_cli(*args, stdin=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "dsnparse", *args], input=stdin,
                          capture_output=True, env=env, timeout=120)


def _mbox(tmp_path, msgs):
    p = tmp_path / "box.mbox"
    with open(p, "wb") as f:
        for m in msgs:
            f.write(b"From MAILER-DAEMON Mon Mar  2 09:14:07 2026\n")
            body = m.replace(b"\nFrom ", b"\n>From ")
            f.write(body if body.endswith(b"\n") else body + b"\n")
            f.write(b"\n")
    return p


def test_mbox_streams_each_message_with_index(tmp_path):
    p = _mbox(tmp_path, [S1, NB, S2])
    items = list(parse_path(p))
    assert [s for s, _ in items] == [f"{p}#0", f"{p}#1", f"{p}#2"]
    assert [r.kind for _, r in items] == ["bounce", "not_bounce", "bounce"]
    assert len(items[2][1].verdicts) == 3


def test_mbox_unescapes_from_lines(tmp_path):
    msg = b"From: a@x\nTo: b@y\nSubject: s\n\nline\nFrom here on\n"
    p = _mbox(tmp_path, [msg])
    (src, data), = list(iter_messages(p))
    assert b"\nFrom here on\n" in data


def test_maildir_keys(tmp_path):
    md = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    (md / "new" / "1700000000.A.host").write_bytes(S1)
    (md / "cur" / "1700000001.B.host:2,S").write_bytes(NB)
    items = list(parse_path(md))
    assert [s for s, _ in items] == [f"{md}#1700000000.A.host", f"{md}#1700000001.B.host"]


def test_directory_is_walked_in_order_and_hidden_files_skipped(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.eml").write_bytes(S1)
    (tmp_path / "b" / "c.eml").write_bytes(NB)
    (tmp_path / ".hidden.eml").write_bytes(S2)
    assert [s for s, _ in parse_path(tmp_path)] == [str(tmp_path / "a.eml"), str(tmp_path / "b" / "c.eml")]


def test_oversized_message_is_reported_not_loaded(tmp_path):
    p = tmp_path / "big.eml"
    p.write_bytes(S1)
    from dsnparse.options import Options
    (src, rep), = list(parse_path(p, Options(max_message_bytes=100)))
    assert rep.kind == "error" and "larger than" in rep.error


def test_cli_jsonl_every_input_accounted_for(tmp_path):
    (tmp_path / "a.eml").write_bytes(S2)
    (tmp_path / "b.eml").write_bytes(NB)
    (tmp_path / "c.eml").write_bytes(b"\x00\x01 not mail")
    r = run_cli("parse", str(tmp_path), "-f", "jsonl")
    assert r.returncode == 0, r.stderr
    recs = [json.loads(l) for l in r.stdout.decode().splitlines()]
    assert [x["kind"] for x in recs] == ["bounce", "bounce", "bounce", "not_bounce", "error"]
    assert [x["final_recipient"] for x in recs[:3]] == ["bob@full.example", "carol@closed.example", "dave@slow.example"]
    assert recs[3]["final_recipient"] is None and recs[3]["source"].endswith("b.eml")
    summary = r.stderr.decode()
    assert "messages: 3" in summary and "bounces: 1" in summary and "hard: 1" in summary \
        and "soft: 1" in summary and "errors: 1" in summary


def test_cli_stdin_and_csv():
    r = run_cli("parse", "-", "-f", "csv", "-q", stdin=S1)
    assert r.returncode == 0
    rows = list(csv.DictReader(io.StringIO(r.stdout.decode())))
    assert len(rows) == 1
    # the source "-" (standard input) is written "'-": no CSV cell may start with "-" (OWASP)
    assert (rows[0]["source"], rows[0]["code"], rows[0]["bounce_type"], rows[0]["status"]) == ("'-", "511", "hard", "5.1.1")
    assert rows[0]["original_recipient"] == "alice.nobody@receiver.example"


def test_cli_exit_codes(tmp_path):
    (tmp_path / "a.eml").write_bytes(S1)
    r = run_cli("parse", str(tmp_path / "a.eml"), str(tmp_path / "missing.eml"), "-q", "-f", "jsonl")
    assert r.returncode == 1
    assert len(r.stdout.decode().splitlines()) == 1          # the readable file is still reported
    assert "missing.eml" in r.stderr.decode()
    assert run_cli("parse").returncode == 2                   # usage error
    assert run_cli("parse", "--format", "xml", "x").returncode == 2
    assert run_cli("--help").returncode == 0


def test_cli_output_file(tmp_path):
    out = tmp_path / "out.jsonl"
    assert main(["parse", str(SAMPLES / "rfc3464" / "01.eml"), "-o", str(out), "-q"]) == 0
    rec = json.loads(out.read_text())
    assert rec["code"] == "511" and rec["rule"].startswith("rfc3464")


def test_parse_records_into_the_ledger(tmp_path):
    db = tmp_path / "ledger.sqlite3"
    assert main(["parse", str(SAMPLES / "rfc3464"), "--db", str(db), "-q", "-o", str(tmp_path / "o.jsonl")]) == 0
    assert main(["parse", str(SAMPLES / "rfc3464"), "--db", str(db), "-q", "-o", str(tmp_path / "o.jsonl")]) == 0
    from dsnparse.ledger import Ledger
    with Ledger(db) as led:
        # suppressed at once: alice (5.1.1, the recipient's fault), erin (911, hard and
        # tagged); carol's 5.7.1 is hard in the table but the sender's fault: not suppressed;
        # bob is soft (5.2.2, one bounce), dave only delayed; the second run adds nothing.
        assert led.is_suppressed("alice.nobody@receiver.example")
        assert not led.is_suppressed("carol@closed.example")
        assert led.is_suppressed("erin@gone.example")
        erin = led.status("erin@gone.example")
        assert (erin.code, erin.basis, erin.tags) == ("911", "hard", ("review_911",))
        assert not led.is_suppressed("bob@full.example")
        assert not led.is_suppressed("dave@slow.example")
    import dsnparse
    assert dsnparse.is_suppressed("alice.nobody@RECEIVER.example", db)  # domain is case-insensitive
    assert main(["suppressions", "check", "--db", str(db), "bob@full.example"]) == 0
    assert main(["suppressions", "check", "--db", str(db), "carol@closed.example"]) == 0
    assert main(["suppressions", "check", "--db", str(db), "erin@gone.example"]) == 1


def test_jobs_keeps_input_order_and_equals_one_job(tmp_path):
    msgs = [S1, NB, S2] * 40  # > 2 chunks, so worker processes are used
    p = _mbox(tmp_path, msgs)
    one = run_cli("parse", "--jobs", "1", "-q", str(p))
    two = run_cli("parse", "--jobs", "2", "-q", str(p))
    assert one.returncode == two.returncode == 0
    assert one.stdout == two.stdout
    sources = [json.loads(l)["source"] for l in two.stdout.decode().splitlines()]
    idx = [int(s.rsplit("#", 1)[1]) for s in sources]
    assert idx == sorted(idx) and idx[-1] == len(msgs) - 1


def test_jobs_in_process_api_orders_items():
    from dsnparse.parallel import parse_items
    from dsnparse.errors import SourceError
    from dsnparse.options import Options

    items = [(f"m{i}", S1 if i % 2 else SourceError(f"m{i}: unreadable")) for i in range(100)]
    out = list(parse_items(iter(items), Options(), 2))
    assert [s for s, _, _ in out] == [s for s, _ in items]
    assert [r.kind for _, _, r in out][:2] == ["error", "bounce"]
    assert isinstance(out[0][1], SourceError)


def test_jobs_must_be_positive(tmp_path):
    r = run_cli("parse", "--jobs", "0", str(SAMPLES))
    assert r.returncode == 2


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_jobs_output_identical_on_directory_and_mbox(tmp_path, fmt):
    """Workers parse and render; the text must be byte-identical to --jobs 1, in input order."""
    emls = sorted(SAMPLES.rglob("*.eml"))
    assert len(emls) > 16 * 3  # several chunks: the worker pool is used
    box = _mbox(tmp_path, [p.read_bytes() for p in emls])
    for path in (SAMPLES, box):
        one = run_cli("parse", "--jobs", "1", "-q", "-f", fmt, str(path))
        two = run_cli("parse", "--jobs", "2", "-q", "-f", fmt, str(path))
        assert one.returncode == two.returncode
        assert one.stdout and one.stdout == two.stdout, path
        assert one.stderr == two.stderr


def test_mbox_split_matches_line_reader(tmp_path):
    """The block splitter agrees with a plain line-by-line reading of the mbox rules."""
    import random
    import re

    from dsnparse import sources

    def by_lines(data, cap):
        out, buf, prev_blank, first = [], None, True, True
        for line in re.findall(rb"[^\n]*\n|[^\n]+", data):  # lines as `for line in file`
            if line.startswith(b"From ") and (prev_blank or first):
                if buf is not None:
                    out.append(buf)
                buf, first, prev_blank = b"", False, False
                continue
            prev_blank = line in (b"\n", b"\r\n")
            if line.startswith(b">") and line.lstrip(b">").startswith(b"From "):
                line = line[1:]
            buf += line
        if buf is not None:
            out.append(buf)
        return [b if len(b) <= cap else None for b in out]

    pieces = [b"From ", b"\n", b"\r\n", b">From ", b">>From ", b"x", b"From a b\n",
              b"\n\nFrom z\n", b"\r", b">", b"\nFrom ", b"hello\n"]
    rnd = random.Random(7)
    p = tmp_path / "f.mbox"
    saved = sources._BLOCK
    try:
        for _ in range(3000):
            data = b"From " + b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 40)))
            p.write_bytes(data)
            cap = rnd.choice([5, 20, 1000])
            sources._BLOCK = rnd.choice([1, 3, 16, 1 << 20])
            got = [d if isinstance(d, bytes) else None for _, d in sources._mbox(p, cap, "n")]
            assert got == by_lines(data, cap), (data, cap, sources._BLOCK)
    finally:
        sources._BLOCK = saved


def test_jobs_reads_directory_files_in_workers(tmp_path):
    from dsnparse.sources import FileRef

    d = tmp_path / "d"
    d.mkdir()
    (d / "a.eml").write_bytes(S1)
    (d / "b.mbox").write_bytes(b"From x\n" + NB)
    items = list(iter_messages(d, defer_files=True))
    assert isinstance(items[0][1], FileRef) and items[1][1] == NB
    assert [r.kind for _, r in parse_path(d)] == ["bounce", "not_bounce"]
