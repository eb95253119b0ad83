"""CSV safety (OWASP "CSV injection"): no CSV cell dsnparse writes starts with =, +, -, @,
a tab or a carriage return; such a cell gets a leading ' (README, "CSV and spreadsheets")."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

from hypothesis import given, strategies as st

from conftest import ROOT
from dsnparse.ledger import Ledger
from dsnparse.output import CSV_FORMULA_STARTS, SafeCsvWriter, csv_cell

TRIGGERS = tuple("=+-@\t\r")

# An invented DSN whose fields start with the characters a spreadsheet would run.
HOSTILE = b"""From: Mail Delivery System <MAILER-DAEMON@mx.sender.example>
To: bounces@sender.example
Subject: Undelivered Mail Returned to Sender
Date: Mon, 2 Mar 2026 09:14:07 +0000
Message-ID: <=SUM(1+1)@mx.sender.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

Your message could not be delivered.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; -cmd.sender.example

Final-Recipient: rfc822; =cmd@receiver.example
Original-Recipient: rfc822; -list@receiver.example
Action: failed
Status: 5.1.1
Remote-MTA: dns; @mx.receiver.example
Diagnostic-Code: smtp; -550 5.1.1 user unknown

--b1--
"""


def run_cli(*args, stdin=None, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "dsnparse", *args], input=stdin, cwd=cwd,
                          capture_output=True, env=env, timeout=120)


def assert_safe(rows):
    for row in rows:
        for cell in row:
            assert cell[:1] not in TRIGGERS, (cell, row)


def test_the_rule_is_owasp_s_six_characters():
    assert set(CSV_FORMULA_STARTS) == set(TRIGGERS)


def test_csv_cell_prefixes_every_trigger_and_nothing_else():
    assert [csv_cell(c + "x") for c in TRIGGERS] == ["'" + c + "x" for c in TRIGGERS]
    assert csv_cell("-") == "'-"          # a status or source of just "-"
    assert csv_cell(-3) == "'-3"          # a negative number is a cell like any other
    assert csv_cell(3) == "3"
    assert csv_cell(None) == ""
    assert csv_cell("") == ""
    assert csv_cell("bob@example.org") == "bob@example.org"   # "@" inside is harmless
    assert csv_cell("'=1") == "'=1"
    assert csv_cell(" =1") == " =1"       # not a leading "=": left as written


@given(st.text())
def test_no_cell_starts_with_a_trigger_and_the_text_is_kept(s):
    out = csv_cell(s)
    assert out[:1] not in TRIGGERS
    kept = s.replace("\x00", "\ufffd")      # NUL: not writable by 3.10's csv module
    assert out == kept or (out == "'" + kept and s[0] in TRIGGERS)


def test_a_cr_inside_a_cell_keeps_the_row_whole():
    buf = io.StringIO(newline="")
    w = SafeCsvWriter(buf)
    w.writerow(["550 mailbox\runavailable", "x"])
    w.writerow(["\r", "y"])
    rows = list(csv.reader(io.StringIO(buf.getvalue(), newline="")))
    assert rows == [["550 mailbox\runavailable", "x"], ["'\r", "y"]]


def test_nul_is_written_as_a_replacement_character():
    buf = io.StringIO(newline="")
    SafeCsvWriter(buf).writerow(["a\x00b", "\x00=x"])
    assert buf.getvalue() == "a\ufffdb,\ufffd=x\n"


@given(st.lists(st.one_of(st.none(), st.text(), st.integers(), st.floats(allow_nan=False)),
                max_size=8))
def test_safe_writer_round_trips_through_a_csv_reader(cells):
    buf = io.StringIO(newline="")
    SafeCsvWriter(buf).writerow(cells)
    (row,) = list(csv.reader(io.StringIO(buf.getvalue(), newline="")))
    assert row == [csv_cell(c) for c in cells] or (cells == [] and row == [])


def test_parse_csv_output_of_a_hostile_bounce(tmp_path):
    (tmp_path / "b.eml").write_bytes(HOSTILE)
    r = run_cli("parse", "b.eml", "-f", "csv", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(io.StringIO(r.stdout.decode(), newline="")))
    assert_safe(rows)
    rec = dict(zip(rows[0], rows[1]))
    assert rec["final_recipient"] == "'=cmd@receiver.example"
    assert rec["original_recipient"] == "'-list@receiver.example"
    assert rec["remote_mta"] == "'@mx.receiver.example"
    assert rec["reporting_mta"] == "'-cmd.sender.example"
    assert rec["diagnostic_code"] == "'-550 5.1.1 user unknown"
    assert rec["status"] == "5.1.1" and rec["code"] == "511"
    # JSON Lines is data, not a spreadsheet: values stay as written
    r = run_cli("parse", "b.eml", "-f", "jsonl", "-q", cwd=tmp_path)
    assert b'"final_recipient": "=cmd@receiver.example"' in r.stdout


def test_parse_csv_from_standard_input_names_the_source_safely():
    r = run_cli("parse", "-", "-f", "csv", "-q", stdin=HOSTILE)
    rows = list(csv.reader(io.StringIO(r.stdout.decode(), newline="")))
    assert_safe(rows)
    assert rows[1][0] == "'-"


def _hostile_ledger(path):
    with Ledger(path) as led:
        led.record_event("=cmd@receiver.example", "bounce", at=1_770_000_000,
                         code="511", bounce_type="hard", status="5.1.1", reason="+tab",
                         message_id="-mid@x.example", action="failed")
        led.record_event("-dash@receiver.example", "complaint", at=1_770_000_100,
                         feedback_type="abuse", message_id="mid2@x.example")


def test_suppressions_export_and_list_csv_are_safe(tmp_path):
    db = tmp_path / "l.sqlite3"
    _hostile_ledger(db)
    buf = io.StringIO(newline="")
    with Ledger(db) as led:
        assert led.export(buf, "csv") >= 1
    rows = list(csv.reader(io.StringIO(buf.getvalue(), newline="")))
    assert_safe(rows)
    by_email = {row[0]: row for row in rows[1:]}
    assert by_email["'=cmd@receiver.example"][1:3] == ["'+tab", "hard"]
    assert by_email["'-dash@receiver.example"][2] == "complaint"
    r = run_cli("suppressions", "export", "--db", str(db), "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert list(csv.reader(io.StringIO(r.stdout.decode(), newline=""))) == rows
    r = run_cli("suppressions", "list", "--db", str(db), "--format", "csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(io.StringIO(r.stdout.decode(), newline="")))
    assert_safe(rows)
    assert {"'=cmd@receiver.example", "'-dash@receiver.example"} <= {row[0] for row in rows}
