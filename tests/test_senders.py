"""`dsnparse senders`: sender/message-fault rejections per receiving domain."""
from __future__ import annotations

import csv
import io
import json

import pytest

from dsnparse.cli import main
from dsnparse.senders import FIELDS, parse_since, sender_problems

T0 = 1_715_076_000.0   # Tue, 07 May 2024 10:00:00 +0000
DAY = 86400.0


def ev(addr, kind="bounce", at=T0, fault=None, status=None, reason=None, diag=None, mta=None,
       code=None):
    return {"address": addr, "kind": kind, "at": at, "fault": fault, "status": status,
            "reason": reason, "diagnostic_code": diag, "remote_mta": mta, "code": code}


def test_rows_count_share_times_and_the_newest_example():
    events = [
        ev("a@gmail.example", fault="sender", status="5.7.26", reason="auth_failure",
           diag="550 5.7.26 DMARC old", mta="mx1", at=T0),
        ev("a@gmail.example", fault="sender", status="5.7.26", reason="auth_failure",
           diag="550 5.7.26 DMARC", mta="mx2", at=T0 + DAY),
        ev("b@gmail.example", fault="message", status="5.3.4", reason="mesg_too_big",
           at=T0 + 2 * DAY, diag="552 5.3.4 too big\n  for us", mta="mx3"),
        ev("c@gmail.example", fault="recipient", status="5.1.1", reason="user_unknown"),
        ev("d@gmail.example", kind="delivered"),
        ev("e@Other.Example", fault="recipient", status="5.1.1"),
    ]
    [row] = sender_problems(events)
    assert (row.domain, row.rejections, row.recipients, row.seen) == ("gmail.example", 3, 2, 4)
    assert row.share == 0.5
    assert (row.first_seen, row.last_seen) == ("2024-05-07T10:00:00Z", "2024-05-09T10:00:00Z")
    assert row.faults == "sender:2;message:1"
    assert (row.status, row.reason) == ("5.7.26", "auth_failure")
    assert (row.remote_mta, row.example) == ("mx3", "552 5.3.4 too big for us")


def test_since_faults_and_fault_from_reason_for_old_events():
    events = [ev("a@x.example", at=T0 - 10 * DAY, fault="sender", status="5.7.1"),
              ev("b@x.example", at=T0, status="5.7.26", reason="auth_failure"),   # no fault
              ev("c@x.example", at=None, fault="sender")]                        # undated
    [row] = sender_problems(events, since=T0 - DAY)
    assert (row.rejections, row.recipients, row.seen, row.faults) == (1, 1, 1, "sender:1")
    [row] = sender_problems(events)
    assert row.rejections == 3
    assert sender_problems(events, faults=("message",)) == []


def test_parse_since():
    assert parse_since("7d", now=T0) == T0 - 7 * DAY
    assert parse_since("36h", now=T0) == T0 - 36 * 3600
    assert parse_since("2024-05-07T10:00:00Z") == T0
    with pytest.raises(ValueError):
        parse_since("last tuesday")


# --- the command, on real files and a real ledger ----------------------------------------

def _dsn(n: int, rcpt: str, status: str, diag: str, date: str) -> bytes:
    return (
        "From: MAILER-DAEMON@out.sender.example\nTo: news@sender.example\n"
        f"Subject: Undelivered Mail\nDate: {date}\nMessage-ID: <b{n}@out.sender.example>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=BB\n\n"
        "--BB\nContent-Type: text/plain\n\nfailed\n\n"
        "--BB\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; out.sender.example\n\n"
        f"Final-Recipient: rfc822; {rcpt}\nAction: failed\nStatus: {status}\n"
        f"Remote-MTA: dns; mx.{rcpt.split('@')[1]}\nDiagnostic-Code: smtp; {diag}\n\n--BB--\n"
    ).encode()


DMARC = "550 5.7.26 Unauthenticated email is not accepted due to the domain's DMARC policy"
UNKNOWN = "550 5.1.1 user unknown"


@pytest.fixture
def mail(tmp_path):
    d = tmp_path / "bounces"
    d.mkdir()
    msgs = [
        ("ann@gmail.example", "5.7.26", DMARC, "Tue, 7 May 2024 10:00:00 +0000"),
        ("bob@gmail.example", "5.7.26", DMARC, "Wed, 8 May 2024 10:00:00 +0000"),
        ("cid@gmail.example", "5.1.1", UNKNOWN, "Wed, 8 May 2024 11:00:00 +0000"),
        ("dee@gmail.example", "5.1.1", UNKNOWN, "Wed, 8 May 2024 12:00:00 +0000"),
        ("eve@corp.example", "5.1.1", UNKNOWN, "Wed, 8 May 2024 12:00:00 +0000"),
        ("fay@corp.example", "5.7.1", "554 5.7.1 Service unavailable; client host "
                                      "[192.0.2.1] blocked using zen.spamhaus.org",
         "Thu, 1 Feb 2024 12:00:00 +0000"),
    ]
    for n, (rcpt, status, diag, date) in enumerate(msgs, 1):
        (d / f"{n:02d}.eml").write_bytes(_dsn(n, rcpt, status, diag, date))
    return d


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_from_mail_and_from_the_ledger_agree(tmp_path, mail, capsys):
    assert main(["senders", str(mail), "-f", "json"]) == 0
    direct = _json(capsys)
    got = {r["domain"]: r for r in direct["domains"]}
    assert set(got) == {"gmail.example", "corp.example"}
    g = got["gmail.example"]
    assert (g["rejections"], g["recipients"], g["seen"], g["share"]) == (2, 2, 4, 0.5)
    assert (g["faults"], g["status"], g["reason"]) == ("sender:2", "5.7.26", "auth_failure")
    assert g["remote_mta"] == "mx.gmail.example" and "DMARC" in g["example"]
    assert got["corp.example"]["reason"] == "blocked"

    db = tmp_path / "l.sqlite3"
    assert main(["parse", str(mail), "--db", str(db), "-q", "-o", str(tmp_path / "v.jsonl")]) == 0
    assert main(["senders", "--db", str(db), "-f", "json"]) == 0
    assert _json(capsys)["domains"] == direct["domains"]


def test_threshold_since_and_exit_status(tmp_path, mail, capsys):
    # gmail: 2 of 4 recipients (50%), corp: 1 of 2 (50%)
    assert main(["senders", str(mail), "--threshold", "0.5", "-f", "jsonl"]) == 0
    assert main(["senders", str(mail), "--threshold", "0.49", "-f", "jsonl"]) == 1
    err = capsys.readouterr().err
    assert "gmail.example: 2 of 4 recipients (50.0%)" in err
    assert main(["senders", str(mail), "--threshold", "40%", "--min-recipients", "5"]) == 0
    capsys.readouterr()
    # since May: the February blocklist bounce is out, corp.example has no rejection left
    assert main(["senders", str(mail), "--since", "2024-05-01", "-f", "json"]) == 0
    out = _json(capsys)
    assert [r["domain"] for r in out["domains"]] == ["gmail.example"]
    assert out["since"] == "2024-05-01T00:00:00Z"
    # nothing since then: no row, and a note on stderr (not silence), still exit 0
    assert main(["senders", str(mail), "--since", "2030-01-01", "-f", "jsonl"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "no sender/message-fault rejection since 2030-01-01T00:00:00Z" in err


def test_csv_and_table(mail, capsys):
    assert main(["senders", str(mail), "-f", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert tuple(rows[0]) == FIELDS and rows[0]["domain"] == "gmail.example"
    assert main(["senders", str(mail), "-f", "table"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("domain") and out[1].startswith("gmail.example")


def test_missing_ledger_is_an_error_and_is_not_created(tmp_path, capsys):
    db = tmp_path / "typo.sqlite3"
    assert main(["senders", "--db", str(db)]) == 2
    assert "no ledger" in capsys.readouterr().err
    assert not db.exists()


def test_usage_errors(tmp_path, mail, capsys):
    assert main(["senders", str(mail), "--db", str(tmp_path / "x.sqlite3")]) == 2
    with pytest.raises(SystemExit) as e:
        main(["senders", str(mail), "--threshold", "1.5"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["senders", str(mail), "--since", "someday"])
    assert e.value.code == 2


def test_unreadable_input_exits_1(tmp_path, capsys):
    assert main(["senders", str(tmp_path / "nope.mbox")]) == 1
    assert "nope.mbox" in capsys.readouterr().err
