"""dsnparse.events.parse_event on fixtures written from each provider's published webhook
documentation (tests/events/<provider>/*.json): every event kind the issue names, the
same verdict as mail for the same SMTP diagnostic, and clear errors on unknown shapes.

Expected values come from the standards: RFC 3463 X.1.1 is the bad-mailbox status (table
row 511, hard, reason user_unknown, the recipient's fault), X.2.2 mailbox full (soft, the
mailbox's fault), X.7.1 with a DNSBL text a blocklisting (the sender's fault), X.4.1 no
answer from the host (network); RFC 3464 §2.3.3 actions; RFC 5965 feedback type ``abuse``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import dsnparse
from dsnparse.events import (EVENT_RECORD_FIELDS, EventFormatError, EventReport, PROVIDERS,
                             parse_event)
from dsnparse.events.mapping import load_mapping, validate
from dsnparse.errors import RuleError

FIX = Path(__file__).parent / "events"


def load(provider, name):
    return json.loads((FIX / provider / f"{name}.json").read_text())


def one(provider, name):
    reps = parse_event(provider, load(provider, name))
    assert len(reps) == 1 and isinstance(reps[0], EventReport)
    return reps[0]


def v_of(provider, name):
    r = one(provider, name)
    assert len(r.verdicts) == 1
    return r, r.verdicts[0]


# --- every kind, per provider ------------------------------------------------------------

HARD_511 = ("5.1.1", "511", "hard", "user_unknown", "recipient")


def key(v):
    return (v.status, v.code, v.bounce_type, v.reason, v.fault)


@pytest.mark.parametrize("provider,name,addr,pclass", [
    ("ses", "bounce-permanent", "recipient@example.net", "Permanent/General"),
    ("sendgrid", "bounce", "recipient@example.net", "bounce/Invalid Address"),
    ("mailgun", "failed-permanent", "alice@example.com", "permanent/bounce"),
    ("postmark", "hard-bounce", "john@example.com", "HardBounce"),
    ("sparkpost", "bounce", "recipient@example.net", "10"),
    ("sparkpost", "out-of-band", "oob@example.org", "10"),
])
def test_hard_bounce_of_an_unknown_user(provider, name, addr, pclass):
    r, v = v_of(provider, name)
    assert r.kind == "bounce" and v.action == "failed"
    assert v.final_recipient == addr
    assert key(v) == HARD_511
    assert v.reply_code == "550"
    assert v.rule.startswith(f"event/{provider}#")
    assert r.provider_class == pclass and r.provider == provider
    rec = r.records()[0]
    assert tuple(rec) == EVENT_RECORD_FIELDS
    assert rec["provider_class"] == pclass and rec["source"] == f"{provider}:{r.event_id}"


def test_ses_ids_times_and_mtas():
    r, v = v_of("ses", "bounce-permanent")
    raw = load("ses", "bounce-permanent")
    inner = json.loads(raw["Message"])
    assert r.event_id == raw["MessageId"]          # the SNS MessageId: stable on redelivery
    assert r.event_type == "Bounce"
    from dsnparse.ledger import to_epoch
    assert to_epoch(r.date) == to_epoch(inner["bounce"]["timestamp"]) == 1796032801.0
    assert r.original_message_id == inner["mail"]["messageId"]
    assert v.reporting_mta == "a8-70.smtp-out.amazonses.com"   # "dsn; " type removed
    assert v.remote_mta == "203.0.113.25"
    assert v.diagnostic_code == "550 5.1.1 user unknown"       # "smtp; " type removed
    assert v.status_source == "status_field"


def test_provider_class_decides_what_the_smtp_fields_leave_open():
    # SES Permanent/NoEmail: "the email address doesn't exist", no status, no diagnostic
    r, v = v_of("ses", "bounce-noemail")
    assert key(v) == HARD_511 and v.status_source == "rule"
    assert v.rule == "event/ses#Bounce+class:Permanent/NoEmail"
    # Postmark HardBounce whose Details is no SMTP reply: class 5 (hard), user unknown
    r, v = v_of("postmark", "hard-bounce-no-details")
    assert (v.status, v.code, v.bounce_type, v.reason, v.fault) == \
        ("5.0.0", "500", "hard", "user_unknown", "recipient")
    # SendGrid drop of an address on its bounce list: SendGrid's 5.0.0, reason from the class
    r, v = v_of("sendgrid", "dropped")
    assert (v.status, v.code, v.reason, v.fault) == ("5.0.0", "500", "user_unknown", "recipient")
    assert r.provider_class == "dropped/Bounced Address"
    # Mailgun's own code 605 is no SMTP reply code and is not taken as one
    r, v = v_of("mailgun", "failed-suppress-bounce")
    assert v.reply_code is None and v.code == "500" and v.fault == "recipient"
    assert v.diagnostic_code == "Not delivering to previously bounced address"


def test_smtp_diagnostic_wins_over_the_provider_class():
    # SES says Transient/MailboxFull, the remote said 552 5.2.2: the table's 522 (soft)
    r, v = v_of("ses", "bounce-transient-mailboxfull")
    assert (v.status, v.code, v.bounce_type, v.reason, v.fault) == \
        ("5.2.2", "522", "soft", "mailbox_full", "mailbox")
    assert "+class:" not in v.rule


@pytest.mark.parametrize("provider,name,addr,status,code,reason,fault", [
    ("ses", "delivery-delay", "slow@example.com", "4.4.1", "421", "network_error", "network"),
    ("sendgrid", "deferred", "later@example.com", "4.2.2", "452", "mailbox_full", "mailbox"),
    ("mailgun", "failed-temporary", "full@example.org", "4.2.2", "452", "mailbox_full", "mailbox"),
    ("postmark", "transient", "slow@example.com", "4.4.2", "421", None, "network"),
    ("sparkpost", "delay", "full@example.org", "4.2.2", "452", "mailbox_full", "mailbox"),
])
def test_delays(provider, name, addr, status, code, reason, fault):
    r, v = v_of(provider, name)
    assert r.kind == "delay" and v.action == "delayed" and v.final_recipient == addr
    assert (v.status, v.code, v.bounce_type, v.fault) == (status, code, "soft", fault)
    if reason:
        assert v.reason == reason


@pytest.mark.parametrize("provider,name,addr", [
    ("ses", "complaint", "angry@example.net"),
    ("sendgrid", "spamreport", "angry@example.net"),
    ("mailgun", "complained", "angry@example.net"),
    ("postmark", "spam-complaint", "angry@example.net"),
    ("sparkpost", "spam-complaint", "angry@example.net"),
])
def test_complaints(provider, name, addr):
    r, v = v_of(provider, name)
    assert r.kind == "complaint"
    assert (v.final_recipient, v.reason, v.feedback_type) == (addr, "feedback", "abuse")
    assert v.fault is None and v.code is None


@pytest.mark.parametrize("provider,name,addr", [
    ("ses", "delivery", "happy@example.com"),
    ("sendgrid", "delivered", "happy@example.com"),
    ("mailgun", "delivered", "alice@example.com"),
    ("postmark", "delivery", "john@example.com"),
    ("sparkpost", "delivery", "happy@example.com"),
])
def test_deliveries(provider, name, addr):
    r, v = v_of(provider, name)
    assert r.kind == "delivered" and v.action == "delivered" and v.final_recipient == addr
    assert (v.reason, v.code, v.fault) == ("delivered", None, None)


def test_delivery_without_event_id_gets_a_stable_content_id():
    a, b = one("postmark", "delivery"), one("postmark", "delivery")
    assert a.event_id.startswith("sha256:") and a.event_id == b.event_id
    changed = dict(load("postmark", "delivery"), Recipient="other@example.com")
    assert parse_event("postmark", changed)[0].event_id != a.event_id


@pytest.mark.parametrize("provider,name,status,code,reason,fault", [
    ("sendgrid", "blocked", "5.7.1", "571", "blocked", "sender"),
    ("postmark", "blocked", "5.7.1", "571", "blocked", "sender"),
    ("postmark", "spam-notification", "5.7.1", "571", "spam_detected", "message"),
    ("postmark", "dns-error", "4.4.3", "443", "network_error", "network"),
    ("postmark", "soft-bounce", "4.2.2", "452", "mailbox_full", "mailbox"),
    ("sparkpost", "policy-rejection", "5.7.1", "571", None, "sender"),
])
def test_blocks_and_other_failures(provider, name, status, code, reason, fault):
    r, v = v_of(provider, name)
    assert r.kind == "bounce" and v.action == "failed"
    assert (v.status, v.code, v.fault) == (status, code, fault)
    if reason:
        assert v.reason == reason


@pytest.mark.parametrize("provider,name", [
    ("sendgrid", "open"), ("mailgun", "opened"), ("ses", "subscription-confirmation")])
def test_events_that_are_no_bounce_are_accounted_for(provider, name):
    r = one(provider, name)
    assert r.kind == "not_bounce" and r.verdicts == ()
    recs = r.records()
    assert len(recs) == 1 and recs[0]["kind"] == "not_bounce" and recs[0]["event_type"]


def test_sparkpost_ping_has_no_event_and_batches_keep_their_order():
    assert parse_event("sparkpost", load("sparkpost", "ping")) == []
    batch = [e for n in ("bounce", "delay", "delivery", "spam-complaint")
             for e in load("sparkpost", n)]
    assert [r.kind for r in parse_event("sparkpost", batch)] == \
        ["bounce", "delay", "delivered", "complaint"]
    sg = [e for n in ("bounce", "blocked", "dropped", "deferred", "delivered", "spamreport",
                      "open") for e in load("sendgrid", n)]
    assert [r.kind for r in parse_event("sendgrid", sg)] == \
        ["bounce", "bounce", "bounce", "delay", "delivered", "complaint", "not_bounce"]


def test_bare_ses_event_and_raw_json_text():
    raw = load("ses", "bounce-permanent")
    inner = json.loads(raw["Message"])
    r = parse_event("ses", inner)[0]                  # SNS raw message delivery
    assert key(r.verdicts[0]) == HARD_511
    assert r.event_id == inner["bounce"]["feedbackId"]
    r2 = parse_event("ses", json.dumps(raw).encode())[0]   # the body as received
    assert r2.event_id == raw["MessageId"]


# --- the same rejection, by mail and by event --------------------------------------------

def _dsn(rcpt: str, status: str, diag: str) -> bytes:
    return (
        "From: MAILER-DAEMON@out.sender.example\nTo: news@sender.example\n"
        "Subject: Undelivered Mail Returned to Sender\nDate: Tue, 7 May 2024 10:00:00 +0000\n"
        "Message-ID: <b1@out.sender.example>\nMIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=BB\n\n"
        "--BB\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n"
        "--BB\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; out.sender.example\n\n"
        f"Final-Recipient: rfc822; {rcpt}\nAction: failed\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; {diag}\n\n--BB--\n").encode()


REJECTIONS = [
    ("5.1.1", "550 5.1.1 <ann@example.net>: Recipient address rejected: User unknown in "
              "virtual mailbox table"),
    ("5.2.2", "552 5.2.2 The email account that you tried to reach is over quota"),
    ("5.7.1", "554 5.7.1 Service unavailable; Client host [198.51.100.7] blocked using "
              "zen.spamhaus.org"),
    ("5.7.26", "550 5.7.26 Unauthenticated email from sender.example is not accepted due "
               "to domain's DMARC policy"),
    ("5.3.4", "552 5.3.4 Message size exceeds fixed maximum message size"),
]


def _ses_event(rcpt, status, diag):
    return {"eventType": "Bounce", "mail": {"messageId": "m"},
            "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                       "feedbackId": "f", "bouncedRecipients": [
                           {"emailAddress": rcpt, "action": "failed", "status": status,
                            "diagnosticCode": "smtp; " + diag}]}}


def _sendgrid_event(rcpt, status, diag):
    return [{"email": rcpt, "event": "bounce", "type": "bounce", "status": status,
             "reason": diag, "sg_event_id": "e", "timestamp": 1764496800,
             "bounce_classification": "Unclassified"}]


def _mailgun_event(rcpt, status, diag):
    reply, text = diag.split(" ", 1)       # Mailgun: the code apart from the message
    return {"event-data": {"event": "failed", "severity": "permanent", "reason": "bounce",
                           "id": "i", "timestamp": 1764496800.0, "recipient": rcpt,
                           "delivery-status": {"code": int(reply), "message": text,
                                               "enhanced-code": status}}}


@pytest.mark.parametrize("status,diag", REJECTIONS)
@pytest.mark.parametrize("provider,make", [("ses", _ses_event), ("sendgrid", _sendgrid_event),
                                           ("mailgun", _mailgun_event)])
def test_same_rejection_same_verdict_by_mail_and_by_event(provider, make, status, diag):
    rcpt = "ann@example.net"
    mail = dsnparse.parse(_dsn(rcpt, status, diag)).verdicts[0]
    ev = parse_event(provider, make(rcpt, status, diag))[0].verdicts[0]
    fields = ("status", "reply_code", "code", "bounce_type", "reason", "fault", "fault_rule")
    assert {f: getattr(ev, f) for f in fields} == {f: getattr(mail, f) for f in fields}
    assert mail.status == status                  # (and the mail path read it as written)


# --- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("provider,payload,words", [
    ("nosuch", {}, "unknown provider"),
    ("sendgrid", b"{not json", "not JSON"),
    ("sendgrid", b"\xff\xfe", "not UTF-8"),
    ("sendgrid", 42, "expected a JSON array"),
    ("sendgrid", [{"email": "a@example.com"}], "no event type"),
    ("sendgrid", [{"email": "a@example.com", "event": "teleported"}], "unknown event type"),
    ("sendgrid", [{"event": "bounce", "status": "5.1.1"}], "no recipient address"),
    ("sendgrid", [{"event": "bounce", "email": "not-an-address"}], "no recipient address"),
    ("sendgrid", ["x"], "not a JSON object"),
    ("ses", [], "expected a JSON object"),
    ("ses", {"Type": "Notification", "MessageId": "1", "Message": "no json"}, "not JSON"),
    ("ses", {"Type": "Weird", "MessageId": "1"}, "unknown SNS message Type"),
    ("ses", {"hello": 1}, "neither an SNS message"),
    ("ses", {"eventType": "Bounce", "bounce": {"bouncedRecipients": []}}, "no recipients"),
    ("mailgun", {"signature": {}}, "event-data"),
    ("mailgun", {"event-data": {"event": "failed", "severity": "sideways",
                                "recipient": "a@example.com"}}, "unknown severity"),
    ("postmark", [], "expected a JSON object"),
    ("sparkpost", [{"nomsys": 1}], "no msys"),
    ("sparkpost", [{"msys": {"a": {}, "b": {}}}], "expected one"),
])
def test_unknown_shapes_raise_a_clear_error(provider, payload, words):
    with pytest.raises(EventFormatError) as e:
        parse_event(provider, payload)
    assert words in str(e.value)
    assert isinstance(e.value, ValueError)


def test_every_shipped_mapping_loads_and_validation_names_the_problem(tmp_path):
    for p in PROVIDERS:
        m = load_mapping(p)
        assert m.provider == p and m.documentation.startswith("https://")
    good = {"provider": "x", "type": "event", "events": {"b": {"kind": "bounce"}}}
    validate(tmp_path / "x.yaml", good)
    for bad, word in [
        ({**good, "extra": 1}, "unknown top-level"),
        ({**good, "provider": "y"}, "not the file's name"),
        ({**good, "events": {"b": {"kind": "bouncy"}}}, "unknown kind"),
        ({**good, "events": {"b": {"kind": "bounce", "classes": {"*": {"reason": "nope"}}}}},
         "unknown reason"),
        ({**good, "events": {"b": {"kind": "bounce", "classes": {"*": {"status": "2.0.0"}}}}},
         "not an RFC 3463 failure status"),
        ({**good, "events": {"b": {}}}, "needs kind or kind_by"),
    ]:
        with pytest.raises(RuleError) as e:
            validate(tmp_path / "x.yaml", bad)
        assert word in str(e.value) and "x.yaml" in str(e.value)


def test_the_mail_path_does_not_import_the_events_package():
    import subprocess
    import sys
    code = ("import sys, dsnparse, dsnparse.engine, dsnparse.sources, dsnparse.ledger;"
            "dsnparse.parse(b'From: a@b.example\\nSubject: x\\n\\nhello\\n');"
            "print('dsnparse.events' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


def test_an_event_with_too_many_recipients_is_marked_truncated():
    from dsnparse.events.parse import MAX_RECIPIENTS
    ev = {"eventType": "Complaint", "mail": {"messageId": "m"},
          "complaint": {"feedbackId": "f", "complainedRecipients": [
              {"emailAddress": f"u{i}@example.com"} for i in range(MAX_RECIPIENTS + 5)]}}
    r = parse_event("ses", ev)[0]
    assert len(r.verdicts) == MAX_RECIPIENTS and r.truncated
    assert r.defects == ("recipients_truncated",) and r.records()[0]["truncated"] is True


# --- hostile and random input: a report or EventFormatError, nothing else ----------------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) |
    st.text(max_size=30),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.sampled_from(["event", "type", "email", "status", "reason", "eventType",
                         "notificationType", "bounce", "bouncedRecipients", "emailAddress",
                         "event-data", "severity", "recipient", "delivery-status", "code",
                         "msys", "message_event", "rcpt_to", "RecordType", "Type", "Email",
                         "MessageId", "Message", "timestamp", "x"]), kids, max_size=6),
    max_leaves=25)


def _mutations():
    out = []
    for f in sorted(FIX.glob("*/*.json")):
        out.append((f.parent.name, json.loads(f.read_text())))
    return out


FIXTURES = _mutations()


def _replace_somewhere(obj, value, path):
    """``obj`` with the node reached by the choices in ``path`` replaced by ``value``."""
    if not path or not isinstance(obj, (dict, list)) or not obj:
        return value
    if isinstance(obj, dict):
        k = sorted(obj)[path[0] % len(obj)]
        return {**obj, k: _replace_somewhere(obj[k], value, path[1:])}
    i = path[0] % len(obj)
    return obj[:i] + [_replace_somewhere(obj[i], value, path[1:])] + obj[i + 1:]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(FIXTURES), JSON, st.lists(st.integers(0, 50), max_size=5),
       st.sampled_from(PROVIDERS))
def test_random_and_mutated_payloads_never_crash(fixture, value, path, as_provider):
    provider, payload = fixture
    for prov, body in ((provider, _replace_somewhere(payload, value, path)),
                       (as_provider, value), (as_provider, payload)):
        try:
            reps = parse_event(prov, body)
        except EventFormatError:
            continue
        for r in reps:
            assert isinstance(r, EventReport) and r.records()
            for v in r.verdicts:
                assert v.final_recipient and "@" in v.final_recipient
