"""Hostile input that used to stall the parser (issue 18): each shape runs the command in a
subprocess under a generous wall-clock guard, and the test asserts the *outcome* (the run
completes, with the right verdict or an ``error`` record naming the cause), not a timing.
The shapes are sized so that the code before the fix runs for many minutes on them."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

GUARD = 90  # seconds: a run far beyond this is the stall the test is about


def dsn(final_recipient: str, diagnostic: str = "smtp; 550 5.1.1 user unknown",
        headers: str = "") -> bytes:
    """A small RFC 3464 report (multipart/report, one recipient) with the given fields."""
    return ("From: MAILER-DAEMON@mx.example.net\r\nTo: sender@example.org\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\n{headers}"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
            "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
            "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.net\r\n\r\n"
            f"Final-Recipient: {final_recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            f"Diagnostic-Code: {diagnostic}\r\n\r\n--B--\r\n").encode("utf-8")


def run_parse(message: bytes, *args, timeout: float = GUARD, env=None):
    """``dsnparse parse -f jsonl - ARGS`` on ``message``: (exit status, records, stderr)."""
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    e.update(env or {})
    try:
        r = subprocess.run([sys.executable, "-m", "dsnparse", "parse", "-f", "jsonl", *args, "-"],
                           input=message, capture_output=True, env=e, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the parser did not finish within {timeout} s")
    records = [json.loads(line) for line in r.stdout.decode().splitlines()]
    return r.returncode, records, r.stderr.decode()


# --------------------------------------------------------------------------- address reader

@pytest.mark.parametrize("final_recipient,want", [
    # one "<" then a long run of "@": no bracketed address, the value is kept as written
    ("rfc822; <" + "@" * 400_000, "@" * 400_000),
    # unbalanced comment openers: no comment, the value as written
    ("rfc822; " + "(" * 400_000, "(" * 400_000),
    # a real address, then a flood of unclosed comments
    ("rfc822; alice@example.org " + "(x" * 200_000, "alice@example.org"),
    # many "<" before one ">" far away
    ("rfc822; " + "<a" * 200_000 + " <bob@example.org>", "bob@example.org"),
])
def test_final_recipient_floods_complete_with_the_address(final_recipient, want):
    status, records, err = run_parse(dsn(final_recipient))
    assert status == 0, err
    assert [r["kind"] for r in records] == ["bounce"]
    assert records[0]["final_recipient"] == want
    assert records[0]["status"] == "5.1.1"


@pytest.mark.parametrize("value,want", [
    # RFC 5321 §4.1.2: "=", "+", "(" … are kept in a local part as written
    ("rfc822; =SUM(1+1)@example.com", "=SUM(1+1)@example.com"),
    ("rfc822; <=SUM(1+1)@example.com>", "=SUM(1+1)@example.com"),
    ("rfc822; +cmd|x@example.com", "+cmd|x@example.com"),
    # a comment standing apart from the address is still dropped (RFC 5322 §3.2.2)
    ("rfc822; alice@example.org (Alice Example)", "alice@example.org"),
    ("rfc822; (returned) alice@example.org", "alice@example.org"),
    ("rfc822; (x@y.example) alice@example.org", "alice@example.org"),
    ("rfc822; alice@example.org(Alice)", "alice@example.org"),
])
def test_address_local_part_kept_as_written(value, want):
    from dsnparse import rfc3464

    assert rfc3464.address(value) == want


def test_formula_like_local_part_reaches_the_record():
    import dsnparse

    r = dsnparse.parse(dsn("rfc822; =SUM(1+1)@example.com"))
    assert [v.final_recipient for v in r.verdicts] == ["=SUM(1+1)@example.com"]
    assert r.verdicts[0].code == "511"
