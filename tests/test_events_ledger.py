"""Records from provider events and from bounce mail land in the same ledger under the
same policy (issue 8's fault decides): a hard bounce of an unknown user suppresses, a
complaint suppresses (policy ``complaint.suppress``), a sender-side block does not, a
delivery and a delay are recorded as such, and a redelivered event is not counted twice."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import dsnparse
from dsnparse.events import parse_event
from dsnparse.ledger import Ledger

FIX = Path(__file__).parent / "events"


def event(provider, name):
    return parse_event(provider, json.loads((FIX / provider / f"{name}.json").read_text()))


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite3") as led:
        yield led


def record(led, reports):
    return sum(led.record_report(r) for r in reports)


def test_event_kinds_become_ledger_events_under_the_policy(ledger):
    assert record(ledger, event("ses", "bounce-permanent")) == 1
    d = ledger.status("recipient@example.net")
    assert (d.suppressed, d.basis, d.reason, d.code, d.status) == \
        (True, "hard", "user_unknown", "511", "5.1.1")
    (ev,) = ledger.events("recipient@example.net")
    assert (ev.kind, ev.fault, ev.source) == ("bounce", "recipient",
                                              "ses:7a1e5d6c-0001-5e7f-9b2a-000000000001")
    assert ev.at == 1796032800.0 + 1       # the bounce's own timestamp, not the arrival time

    assert record(ledger, event("sendgrid", "spamreport")) == 1
    d = ledger.status("angry@example.net")
    assert (d.suppressed, d.basis) == (True, "complaint")

    assert record(ledger, event("sendgrid", "blocked")) == 1        # the sender's fault
    assert ledger.status("blocked@example.org").suppressed is False

    assert record(ledger, event("ses", "delivery")) == 1
    assert [e.kind for e in ledger.events("happy@example.com")] == ["delivered"]
    assert record(ledger, event("mailgun", "failed-temporary")) == 1
    assert [e.kind for e in ledger.events("full@example.org")] == ["delay"]
    assert ledger.status("full@example.org").suppressed is False

    assert record(ledger, event("sendgrid", "open")) == 0           # not a bounce
    assert record(ledger, event("ses", "subscription-confirmation")) == 0


def test_a_redelivered_event_is_not_counted_twice(ledger):
    for name in ("bounce-permanent", "complaint", "delivery-delay"):
        assert record(ledger, event("ses", name)) == 1
        assert record(ledger, event("ses", name)) == 0
    batch = [e for n in ("bounce", "deferred", "delivered")
             for e in json.loads((FIX / "sendgrid" / f"{n}.json").read_text())]
    assert record(ledger, parse_event("sendgrid", batch)) == 3
    assert record(ledger, parse_event("sendgrid", batch)) == 0
    assert ledger.count_events() == 6


def _dsn(rcpt: str, status: str, diag: str) -> bytes:
    return (
        "From: MAILER-DAEMON@out.sender.example\nTo: news@sender.example\n"
        "Subject: Undelivered Mail Returned to Sender\nDate: Tue, 7 May 2024 10:00:00 +0000\n"
        f"Message-ID: <{rcpt}@out.sender.example>\nMIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=BB\n\n"
        "--BB\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; out.sender.example\n\n"
        f"Final-Recipient: rfc822; {rcpt}\nAction: failed\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; {diag}\n\n--BB--\n").encode()


@pytest.mark.parametrize("status,diag,suppressed", [
    ("5.1.1", "550 5.1.1 user unknown", True),
    ("5.7.1", "554 5.7.1 Client host [198.51.100.7] blocked using zen.spamhaus.org", False),
])
def test_mail_and_event_decide_alike(tmp_path, status, diag, suppressed):
    with Ledger(tmp_path / "mail.sqlite3") as by_mail, Ledger(tmp_path / "ev.sqlite3") as by_ev:
        by_mail.record_report(dsnparse.parse(_dsn("ann@example.net", status, diag)))
        by_ev.record_report(parse_event("sendgrid", [{
            "email": "ann@example.net", "event": "bounce", "type": "bounce", "status": status,
            "reason": diag, "sg_event_id": "e1", "timestamp": 1764496800}])[0])
        a, b = by_mail.status("ann@example.net"), by_ev.status("ann@example.net")
        assert a.suppressed == b.suppressed == suppressed
        assert (a.basis, a.reason, a.code, a.status) == (b.basis, b.reason, b.code, b.status)
