"""The ledger by fault: the policy's fault section, overrides by fault, schema 2 migration."""
from __future__ import annotations

import sqlite3

import pytest

import dsnparse
from dsnparse.errors import RuleError
from dsnparse.ledger import MIGRATIONS, SCHEMA_VERSION, Ledger
from dsnparse.policy import Event, decide, load_policy

H = 3600.0
T0 = 1_700_000_000.0


def _policy(tmp_path, text):
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    return load_policy(p)


def bounce(led, addr, n, hours, status, reason, code, fault=None, **kw):
    kw.setdefault("original_message_id", f"orig-{n}")
    return led.record_event(addr, "bounce", at=T0 + hours * H, action="failed",
                            message_id=f"bounce-{n}", status=status, reason=reason, code=code,
                            bounce_type="hard" if status and status[0] == "5" else "soft",
                            fault=fault, **kw)


@pytest.fixture
def led(tmp_path):
    with Ledger(tmp_path / "l.sqlite3", policy=load_policy()) as led:
        yield led


@pytest.mark.parametrize("status, reason, code, fault", [
    ("5.7.26", "auth_failure", "570", "sender"),      # DMARC: the sender's own problem
    ("5.7.1", "blocked", "571", "sender"),            # IP on a blocklist
    ("5.7.25", "require_ptr", "570", "sender"),       # no PTR
    ("5.7.1", "spam_detected", "571", "message"),     # content judged spam
    ("5.3.4", "mesg_too_big", "534", "message"),      # too large
    ("5.4.7", "expired", "547", "network"),           # the queue gave up
])
def test_hard_table_codes_of_a_live_address_never_suppress(led, status, reason, code, fault):
    a = "alive@example.org"
    for n in range(4):   # not even repeated over days
        bounce(led, a, n, 40 * n, status, reason, code, fault)
    d = led.status(a)
    assert not d.suppressed and d.soft_count == 0


def test_recipient_permanent_suppresses_at_once(led):
    bounce(led, "gone@example.org", 1, 0, "5.1.1", "user_unknown", "511", "recipient")
    d = led.status("gone@example.org")
    assert d.suppressed and d.basis == "hard" and d.reason == "user_unknown"


def test_recipient_transient_and_mailbox_count_toward_the_soft_rule(led):
    a, b = "maybe@example.org", "full@example.org"
    bounce(led, a, 1, 0, "4.1.1", "user_unknown", "411", "recipient")
    assert not led.is_suppressed(a) and led.status(a).soft_count == 1
    for n, h in ((1, 0), (2, 40), (3, 80)):      # 5.2.2 is soft in the table, 5.2.1 hard
        bounce(led, b, 10 + n, h, "5.2.1", "suspend", "521", "mailbox")
        if n < 3:
            assert not led.is_suppressed(b)
    d = led.status(b)
    assert d.suppressed and d.basis == "soft" and d.soft_count == 3


def test_911_stays_hard_and_tagged_unknown_with_a_status_is_soft_and_tagged(led):
    bounce(led, "x@example.org", 1, 0, None, "undefined", "911", "unknown")
    d = led.status("x@example.org")
    assert d.suppressed and d.basis == "hard" and d.tags == ("review_911",)
    bounce(led, "y@example.org", 2, 0, "5.0.0", "undefined", "500", "unknown")
    d = led.status("y@example.org")
    assert not d.suppressed and d.soft_count == 1 and d.tags == ("review_unknown",)


def test_event_without_fault_gets_the_one_of_its_reason_and_status():
    pol = load_policy()
    old = Event("a@example.org", T0, "bounce", 1, "failed", "570", "hard", "5.7.26",
                "auth_failure")
    assert not decide([old], pol).suppressed
    dead = Event("b@example.org", T0, "bounce", 2, "failed", "511", "hard", "5.1.1", None)
    assert decide([dead], pol).suppressed
    # nothing but a bounce_type: counted by it, as before faults existed
    bare = Event("c@example.org", T0, "bounce", 3, bounce_type="hard", code="571")
    assert decide([bare], pol).suppressed


def test_fault_section_is_overridable_and_merged(tmp_path):
    pol = _policy(tmp_path, "fault:\n  sender: {permanent: soft}\n")
    assert pol.fault_rule("sender") == ("sender", "soft", "ignore", None)
    assert pol.fault_rule("recipient") == ("recipient", "hard", "soft", None)
    assert pol.fingerprint != load_policy().fingerprint
    with Ledger(tmp_path / "o.sqlite3", policy=pol) as led:
        a = "dmarc@example.org"
        for n, h in ((1, 0), (2, 40), (3, 80)):
            bounce(led, a, n, h, "5.7.26", "auth_failure", "570", "sender")
        assert led.status(a).suppressed


def test_override_by_fault_comes_after_the_fault_rules(tmp_path):
    pol = _policy(tmp_path, "overrides:\n  - {fault: sender, domain: strict.example, "
                            "treat_as: hard, tag: sender_block}\n")
    with Ledger(tmp_path / "o.sqlite3", policy=pol) as led:
        bounce(led, "a@strict.example", 1, 0, "5.7.1", "blocked", "571", "sender")
        bounce(led, "a@other.example", 2, 0, "5.7.1", "blocked", "571", "sender")
        d = led.status("a@strict.example")
        assert d.suppressed and d.tags == ("sender_block",)
        assert not led.is_suppressed("a@other.example")


@pytest.mark.parametrize("text, field", [
    ("fault:\n  sendr: {permanent: hard, transient: soft}\n", "fault.sendr"),
    ("fault:\n  sender: {permanent: maybe}\n", "fault.sender.permanent"),
    ("fault:\n  sender: {permanant: hard}\n", "fault.sender.permanant"),
    ("fault:\n  sender: hard\n", "fault.sender"),
    ("fault:\n  sender: {tag: [a]}\n", "fault.sender.tag"),
    ("fault: [recipient]\n", "fault"),
    ("overrides:\n  - {fault: sender, treat_as: never}\n", "treat_as"),
])
def test_bad_fault_policy_is_refused(tmp_path, text, field):
    with pytest.raises(RuleError) as e:
        _policy(tmp_path, text)
    assert e.value.field == field


def test_record_report_stores_fault_diagnostic_and_remote_mta(led):
    raw = (b"From: MAILER-DAEMON@out.sender.example\nTo: news@sender.example\n"
           b"Subject: failure\nDate: Tue, 7 May 2024 10:00:00 +0000\n"
           b"Message-ID: <b1@out.sender.example>\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/report; report-type=delivery-status; boundary=BB\n\n"
           b"--BB\nContent-Type: text/plain\n\nfailed\n\n"
           b"--BB\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; out.sender.example\n\n"
           b"Final-Recipient: rfc822; ann@gmail.example\nAction: failed\nStatus: 5.7.26\n"
           b"Remote-MTA: dns; mx.gmail.example\nDiagnostic-Code: smtp; 550 5.7.26 "
           b"Unauthenticated email is not accepted due to domain's DMARC policy\n\n--BB--\n")
    led.record_report(dsnparse.parse(raw), "dmarc.eml")
    [e] = led.events("ann@gmail.example")
    assert (e.fault, e.remote_mta) == ("sender", "mx.gmail.example")
    assert "DMARC policy" in e.diagnostic_code
    assert not led.is_suppressed("ann@gmail.example")


def _v1_ledger(path):
    """A ledger file exactly as dsnparse wrote it before schema 2 (the shipped MIGRATIONS[1])
    holding two hard bounces that the old policy suppressed."""
    con = sqlite3.connect(path)
    for stmt in MIGRATIONS[1]:
        con.execute(stmt)
    con.execute("PRAGMA user_version=1")
    cols = ("event_key, address, at, kind, action, code, bounce_type, status, reason, "
            "message_id, recorded_at")
    con.execute(f"INSERT INTO events({cols}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                ("k1", "dead@example.org", T0, "bounce", "failed", "511", "hard", "5.1.1",
                 "user_unknown", "m1", T0))
    con.execute(f"INSERT INTO events({cols}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                ("k2", "alive@example.org", T0, "bounce", "failed", "570", "hard", "5.7.26",
                 "auth_failure", "m2", T0))
    for addr, i in (("dead@example.org", 1), ("alive@example.org", 2)):
        con.execute("INSERT INTO addresses(address, suppressed, basis, reason, since, code, "
                    "status, event_ids, updated_at) VALUES (?,1,'hard','x',?,?,?,?,?)",
                    (addr, T0, "5xx", "5.x.x", str(i), T0))
    con.execute("INSERT INTO meta(key, value) VALUES ('policy', 'old-fingerprint')")
    con.commit()
    con.close()


def test_old_schema_ledger_is_migrated_and_keeps_working(tmp_path):
    db = tmp_path / "v1.sqlite3"
    _v1_ledger(db)
    assert SCHEMA_VERSION == 2
    with Ledger(db) as led:
        cols = {r[1] for r in led.conn.execute("PRAGMA table_info(events)")}
        assert {"fault", "diagnostic_code", "remote_mta"} <= cols
        assert led.conn.execute("PRAGMA user_version").fetchone()[0] == 2
        # old events have no stored fault: their reason and status give it
        assert [e.fault for e in led.events("dead@example.org")] == [None]
        assert led.is_suppressed("dead@example.org")
        assert not led.is_suppressed("alive@example.org")   # DMARC: no longer suppressed
        assert led.record_event("dead@example.org", "bounce", at=T0 + H, status="5.1.1",
                                code="511", bounce_type="hard", fault="recipient",
                                message_id="m3")
        assert led.count_events() == 3
    with Ledger(db) as led:   # opening again: nothing to migrate
        assert led.conn.execute("PRAGMA user_version").fetchone()[0] == 2


def test_override_by_fault_matches_events_stored_without_one(tmp_path):
    pol = _policy(tmp_path, "overrides:\n  - {fault: recipient, treat_as: soft}\n")
    old = Event("a@example.org", T0, "bounce", 1, "failed", "511", "hard", "5.1.1",
                "user_unknown")          # no fault: a schema-1 event
    d = decide([old], pol)
    assert not d.suppressed and d.soft_count == 1


def test_record_event_refuses_an_unknown_fault(led):
    with pytest.raises(ValueError, match="unknown fault"):
        led.record_event("a@example.org", "bounce", fault="adress", status="5.1.1")
