"""The RFC 3464 reader and status extraction, on small constructed inputs."""
from __future__ import annotations

import re

import pytest

import dsnparse
from dsnparse import rfc3464
from dsnparse.engine import decide_status
from dsnparse.status import (_REPLY_LEAD, find_reply_code, find_status, find_status_strength,
                             more_specific)

# RFC 3463 §2 codes as first written, look-behind first (the reference for the reordered,
# faster patterns in dsnparse.status): not after a word character or a dot, not before a
# digit or ".digit"; a reply code directly before one makes a pair (RFC 5321 §4.2).
_ENH = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")
_REPLY_ENH = re.compile(
    r"(?<![\w.])([245][0-5]\d)[ -]+['\"#(]?([245]\.\d{1,3}\.\d{1,3})(?![\d]|\.\d)")


def dsn(ds_body: str, report_type="delivery-status", ds_type="message/delivery-status") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example\nTo: a@sender.example\nSubject: failure\n"
        "MIME-Version: 1.0\n"
        f"Content-Type: multipart/report; report-type={report_type}; boundary=XX\n\n"
        "--XX\nContent-Type: text/plain\n\nfailed\n\n"
        f"--XX\nContent-Type: {ds_type}\n\n{ds_body}\n--XX--\n"
    ).encode()


def test_missing_blank_line_between_recipients():
    ds = rfc3464.parse_fields(
        "Reporting-MTA: dns; mx.example\n\n"
        "Final-Recipient: rfc822; a@x.example\nAction: failed\nStatus: 5.1.1\n"
        "Final-Recipient: rfc822; b@x.example\nAction: failed\nStatus: 5.2.2\n"
    )
    assert [r["final-recipient"] for r in ds.recipients] == ["rfc822; a@x.example", "rfc822; b@x.example"]
    assert ds.per_message["reporting-mta"] == "dns; mx.example"


def test_original_recipient_after_final_stays_in_block():
    ds = rfc3464.parse_fields(
        "Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@x\nOriginal-Recipient: rfc822;o@x\n"
        "Action: failed\nStatus: 5.1.1\n"
    )
    assert len(ds.recipients) == 1 and ds.recipients[0]["original-recipient"] == "rfc822;o@x"


def test_action_before_final_recipient():
    ds = rfc3464.parse_fields("Reporting-MTA: dns; m\n\nAction: failed\nFinal-Recipient: rfc822; a@x\n"
                              "Original-Recipient: rfc822; a@x\nStatus: 5.1.1\n")
    assert len(ds.recipients) == 1


def test_folded_and_encoded_diagnostic():
    r = dsnparse.parse(dsn("Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@x.example\n"
                           "Action: failed\nStatus: 5.0.0\nDiagnostic-Code: smtp; 550-5.1.1 The\n"
                           "    account does not exist\n"))
    v = r.verdicts[0]
    assert v.diagnostic_code == "550-5.1.1 The account does not exist"
    assert (v.status, v.status_source, v.code) == ("5.1.1", "diagnostic_text", "511")


@pytest.mark.parametrize("value,want", [
    ("rfc822; a@x.example", "a@x.example"),
    ("RFC822;<a@x.example>", "a@x.example"),
    ("a@x.example", "a@x.example"),
    ("utf-8; \\x{7528}\\x{6237}@x.example", "用户@x.example"),
    ("rfc822; Alice <a@x.example>", "a@x.example"),
    ("x400; /C=FR/ADMD=ATLAS/S=Dupont/", "/C=FR/ADMD=ATLAS/S=Dupont/"),
    ("rfc822; ", None),
])
def test_address_types(value, want):
    assert rfc3464.address(value) == want


@pytest.mark.parametrize("value,want", [
    ("failed", "failed"), ("Failed (bad)", "failed"), ("delayed", "delayed"),
    ("deliverable", "delivered"), ("failure", "failed"), ("relayed", "relayed"),
    ("expanded", "expanded"), ("bogus", None), ("", None),
])
def test_action_values(value, want):
    assert rfc3464.action(value) == want


@pytest.mark.parametrize("value,want", [
    ("smtp; 550 no", "550 no"), ("X-Postfix; host not found", "host not found"),
    ("X-Notes; fail", "fail"), ("dns; mx.example", "mx.example"), ("no type here", "no type here"),
])
def test_strip_type(value, want):
    assert rfc3464.strip_type(value) == want


@pytest.mark.parametrize("text,status,reply", [
    ("550 5.1.1 <a@x>: user unknown", "5.1.1", "550"),
    ("552-5.2.2 over quota", "5.2.2", "552"),
    ("host 192.0.2.1 said: 550 mailbox unavailable", None, "550"),
    ("#5.1.1 no such user", "5.1.1", None),
    ("server version 4.2.1.3 ready", None, None),
    ("550-'5.7.1 Access denied'", "5.7.1", "550"),
    ("", None, None),
])
def test_status_and_reply_extraction(text, status, reply):
    assert find_status(text) == status
    assert find_reply_code(text) == reply


def test_specific_text_code_wins_over_generic_field():
    assert more_specific("5.0.0", "5.1.1")
    assert more_specific("5.1.0", "5.1.1")
    assert not more_specific("5.1.1", "5.2.2")          # a bare code does not override
    assert more_specific("5.1.1", "5.7.1", paired=True)  # the remote server's own reply does
    assert not more_specific("5.0.0", "4.2.2")          # never across classes
    assert decide_status(None, None) == (None, "none")
    assert decide_status("5.1.1", None) == ("5.1.1", "status_field")
    assert decide_status(None, "5.2.2") == ("5.2.2", "diagnostic_text")
    assert find_status_strength("550 5.7.1 denied") == ("5.7.1", True)


def test_delay_delivered_and_kinds():
    delayed = dsnparse.parse(dsn("Reporting-MTA: dns; m\n\nFinal-Recipient: rfc822; a@x\n"
                                 "Action: delayed\nStatus: 4.4.7\n"))
    assert delayed.kind == "delay"
    v = delayed.verdicts[0]
    assert (v.code, v.bounce_type, v.description) == ("447", "soft", "Delivery time expired")
    ok = dsnparse.parse(dsn("Reporting-MTA: dns; m\n\nFinal-Recipient: rfc822; a@x\n"
                            "Action: delivered\nStatus: 2.0.0\n"))
    assert ok.kind == "delivered" and ok.verdicts[0].code is None and ok.verdicts[0].bounce_type is None
    for act in ("relayed", "expanded"):
        r = dsnparse.parse(dsn(f"Reporting-MTA: dns; m\n\nFinal-Recipient: rfc822; a@x\nAction: {act}\n"
                               "Status: 2.0.0\n"))
        assert r.kind == "delivered"


def test_status_from_reply_code_only():
    r = dsnparse.parse(dsn("Reporting-MTA: dns; m\n\nFinal-Recipient: rfc822; a@x\nAction: failed\n"
                           "Diagnostic-Code: smtp; 552 Requested mail action aborted\n"))
    v = r.verdicts[0]
    assert (v.status, v.status_source, v.reply_code, v.code, v.bounce_type) == (
        "5.2.2", "reply_code", "552", "522", "soft")


def test_status_block_as_text_plain():
    body = ("From: postmaster@x.example\nTo: s@y.example\nSubject: Undeliverable\n\n"
            "Your message could not be delivered.\n\n"
            "Reporting-MTA: dns; x.example\n\nFinal-Recipient: rfc822; z@q.example\n"
            "Action: failed\nStatus: 5.1.2\n")
    r = dsnparse.parse(body.encode())
    assert r.kind == "bounce" and r.format == "rfc3464-text"
    assert (r.verdicts[0].final_recipient, r.verdicts[0].code) == ("z@q.example", "512")


@pytest.mark.parametrize("name, found", [
    ("FINAL-RECIPIENT", True),   # field names are case-insensitive (RFC 5322 §1.2.2)
    ("Final-Recipient", True),
    ("F\u0131nal-Recipient", False),  # dotless i: no field name (RFC 5322 §2.2: ASCII)
    ("Final Recipient", False),  # not the field
])
def test_status_block_as_text_plain_field_name_forms(name, found):
    body = ("From: postmaster@x.example\nTo: s@y.example\nSubject: Undeliverable\n"
            "Content-Type: text/plain; charset=utf-8\n\n"
            "Your message could not be delivered.\n\n"
            f"Reporting-MTA: dns; x.example\n\n{name}: rfc822; z@q.example\n"
            "Action: failed\nStatus: 5.1.2\n")
    ds = rfc3464.read(rfc3464.scan(dsnparse.engine.load(body.encode())))
    assert (ds is not None and ds.format == "rfc3464-text") is found
    if found:
        assert ds.recipients[0]["action"] == "failed"
        assert ds.recipients[0]["status"] == "5.1.2"


def test_global_dsn_with_transfer_encoding():
    import base64
    ds = base64.b64encode("Reporting-MTA: dns; m\n\nFinal-Recipient: utf-8; ü@x.example\n"
                          "Action: failed\nStatus: 5.1.1\n".encode()).decode()
    msg = ("From: m@x\nTo: a@y\nSubject: f\nMIME-Version: 1.0\n"
           "Content-Type: multipart/report; report-type=global-delivery-status; boundary=B\n\n"
           "--B\nContent-Type: text/plain\n\nx\n--B\nContent-Type: message/global-delivery-status\n"
           f"Content-Transfer-Encoding: base64\n\n{ds}\n--B--\n")
    r = dsnparse.parse(msg.encode())
    assert r.verdicts[0].final_recipient == "ü@x.example"


def test_not_an_email_raises_input_error():
    for data in (b"", b"   \n", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest", b"%PDF-1.4 binary"):
        with pytest.raises(dsnparse.InputError):
            dsnparse.parse(data)


def test_parse_accepts_str_and_message():
    import email
    text = dsn("Reporting-MTA: dns; m\n\nFinal-Recipient: rfc822; a@x\nAction: failed\nStatus: 5.1.1\n").decode()
    assert dsnparse.parse(text).verdicts[0].code == "511"
    assert dsnparse.parse(email.message_from_string(text)).verdicts[0].code == "511"


def test_cr_only_line_endings_decode_quoted_printable_soft_breaks():
    msg = (b"From: MAILER-DAEMON@mx.example\rTo: a@example.org\rSubject: failure\r"
           b"MIME-Version: 1.0\rContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\r"
           b"--B\rContent-Type: text/plain\rContent-Transfer-Encoding: quoted-printable\r\r"
           b"The recipient mail=\rbox is full\r"
           b"--B\rContent-Type: message/delivery-status\r\rReporting-MTA: dns; mx.example\r\r"
           b"Final-Recipient: rfc822; z@example.net\rAction: failed\r--B--\r")
    from dsnparse import engine
    r = engine.parse(msg)
    assert r.verdicts[0].final_recipient == "z@example.net"
    ctx_text = engine.Context(engine.load(msg), engine.rfc3464.scan(engine.load(msg)), engine.DEFAULT, None).text()
    assert "mailbox is full" in ctx_text
    assert r.verdicts[0].reason == "mailbox_full"


def _reply_by_one_regex(text):
    """The reply-code rule of RFC 5321 §4.2 as one regular expression (the reference for the
    faster candidate-then-lead-in search in dsnparse.status)."""
    m = _REPLY_ENH.search(text) or _REPLY_LEAD.search(text)
    return m.group(1) if m else None


@pytest.mark.parametrize("text, reply", [
    ("host said: 550 no such user", "550"),
    ("RETURNED (  452 mailbox busy", "452"),
    ("error:\t\t421 try later", "421"),
    ("conn 421 x", None),                     # no lead-in before the number
    ("said 2550 x", None),                    # a longer number is no reply code
    ("line one\n554-first line", "554"),      # start of a line, multi-line reply
    ("queued as 250.1 then said 550 x", "550"),
])
def test_reply_code_lead_ins(text, reply):
    assert find_reply_code(text) == reply == _reply_by_one_regex(text)


def test_reply_code_search_equals_the_single_regex():
    import random
    rng = random.Random(11)
    tokens = ["550", "4.2.2", "5.1.1", "421", "2550", "5", "said", "Reply", "replied", "ERROR",
              "response", "returned", "x", ":", "(", " ", "  ", "\t", "\n", ";", ">", "]", ")",
              "\"", "'", "-", ".", "0", "_", "é", "\u0665", "#"]
    for _ in range(30000):
        text = "".join(rng.choice(tokens) for _ in range(rng.randint(0, 12)))
        assert find_reply_code(text) == _reply_by_one_regex(text), repr(text)
        assert find_status_strength(text) == _status_by_regexes(text), repr(text)


def _status_by_regexes(text):
    """RFC 3463 §2 status, preferring one paired with a reply code: the reference."""
    m = _REPLY_ENH.search(text)
    if m:
        c, s, d = m.group(2).split(".")
        return f"{c}.{int(s)}.{int(d)}", True
    m = _ENH.search(text)
    return (f"{m.group(1)}.{int(m.group(2))}.{int(m.group(3))}", False) if m else (None, False)


# --- RFC 6522 report structure: where the delivery-status part sits, and who sent it ---

_DS_ONE = ("Reporting-MTA: dns; mx.example\n\nFinal-Recipient: rfc822; bob@far.example\n"
           "Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 no such user\n")


def mixed_with_ds(headers: str, ds_body: str = _DS_ONE) -> bytes:
    """A multipart/mixed (not a multipart/report) holding a delivery-status part."""
    return (f"{headers}Subject: Fwd: Undeliverable\nMIME-Version: 1.0\n"
            "Content-Type: multipart/mixed; boundary=MM\n\n"
            "--MM\nContent-Type: text/plain\n\nsee below\n\n"
            f"--MM\nContent-Type: message/delivery-status\n\n{ds_body}\n--MM--\n").encode()


def test_every_delivery_status_part_is_read_in_order_without_duplicates():
    two = (
        "From: MAILER-DAEMON@mx.example\nSubject: failure\nMIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=XX\n\n"
        "--XX\nContent-Type: text/plain\n\nfailed\n\n"
        "--XX\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; a.example\n\n"
        "Final-Recipient: rfc822; one@x.example\nAction: failed\nStatus: 5.1.1\n\n"
        "--XX\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; b.example\n\n"
        "Final-Recipient: rfc822; two@y.example\nAction: failed\nStatus: 5.2.2\n\n"
        "Final-Recipient: rfc822; ONE@x.example\nAction: failed\nStatus: 5.1.1\n\n"
        "--XX--\n").encode()
    r = dsnparse.parse(two)
    assert [v.final_recipient for v in r.verdicts] == ["one@x.example", "two@y.example"]
    assert [v.code for v in r.verdicts] == ["511", "522"]
    # each recipient keeps the Reporting-MTA of the part it was read from
    assert [v.reporting_mta for v in r.verdicts] == ["a.example", "b.example"]
    assert r.reporting_mta == "a.example"
    st = rfc3464.scan(dsnparse.load.load(two))
    ds = rfc3464.read(st)
    assert len(ds.parts) == 2 and ds.parts == st.ds_parts


def test_report_position_per_rfc6522():
    from dsnparse.load import load
    std = load(dsn(_DS_ONE))
    assert rfc3464.in_report_position(std, rfc3464.read(rfc3464.scan(std)))
    whole = load(("From: MAILER-DAEMON@mx.example\nContent-Type: message/delivery-status\n\n"
                  + _DS_ONE).encode())
    ds = rfc3464.read(rfc3464.scan(whole))
    assert ds.parts == [whole] and rfc3464.in_report_position(whole, ds)
    mixed = load(mixed_with_ds("From: MAILER-DAEMON@mx.example\n"))
    assert not rfc3464.in_report_position(mixed, rfc3464.read(rfc3464.scan(mixed)))


def test_report_forwarded_by_a_person_is_not_a_bounce():
    r = dsnparse.parse(mixed_with_ds("From: Ann Lee <ann@corp.example>\n"
                                     "Return-Path: <ann@corp.example>\n"))
    assert r.kind == "not_bounce" and r.format == "forwarded-report" and not r.verdicts


@pytest.mark.parametrize("headers", [
    "From: MAILER-DAEMON@mx.example\n",                       # system From
    "From: Mail Delivery System <bounces@mx.example>\n",       # mail-system display name
    "From: ann@corp.example\nReturn-Path: <>\n",               # null reverse path
    "From: ann@corp.example\nAuto-Submitted: auto-generated\n",  # RFC 3834
    "From: ann@corp.example\nX-Failed-Recipients: bob@far.example\n",
    "To: someone@corp.example\n",                              # no From at all
])
def test_report_outside_multipart_report_is_read_when_a_mail_system_sent_it(headers):
    r = dsnparse.parse(mixed_with_ds(headers))
    assert r.kind == "bounce"
    assert [(v.final_recipient, v.code) for v in r.verdicts] == [("bob@far.example", "511")]


def test_auto_submitted_no_is_not_system_evidence():
    r = dsnparse.parse(mixed_with_ds("From: ann@corp.example\nAuto-Submitted: no\n"))
    assert r.kind == "not_bounce"


def test_status_block_pasted_into_a_persons_message_is_not_a_bounce():
    body = ("From: Ann Lee <ann@corp.example>\nSubject: Fwd: Returned mail\n\n"
            "---------- Forwarded message ---------\n" + _DS_ONE)
    assert dsnparse.parse(body.encode()).kind == "not_bounce"
    # the same text block sent by a mail system is a report (some MTAs write it inline)
    sysmsg = body.replace("Ann Lee <ann@corp.example>", "Mail Delivery Subsystem <MAILER-DAEMON@mx.example>")
    r = dsnparse.parse(sysmsg.encode())
    assert r.kind == "bounce" and r.verdicts[0].final_recipient == "bob@far.example"


# --- a reply code written where a status belongs (RFC 3464 §2.3.4 wants X.Y.Z) ---

@pytest.mark.parametrize("value,want", [
    ("550", (None, "550")),
    ("550 5.1.1 user unknown", ("5.1.1", "550")),
    ("#550-5.1.1", ("5.1.1", "550")),
    ("452 4.2.2 over quota", ("4.2.2", "452")),
    ("smtp; 5.2.2", ("5.2.2", None)),
    ("#5.1.1", ("5.1.1", None)),
    ("(5.7.1)", ("5.7.1", None)),
    ("5.1", (None, None)),
    ("5505", (None, None)),
    ("unknown", (None, None)),
    ("", (None, None)),
])
def test_read_status_field(value, want):
    from dsnparse.status import read_status_field
    assert read_status_field(value) == want


_H = "Reporting-MTA: dns; mx.example\n\nFinal-Recipient: rfc822; bob@far.example\nAction: failed\n"


@pytest.mark.parametrize("fields,status,source,reply,code", [
    # a bare reply code: its RFC 5321 meaning (550 -> 5.0.0, 552 -> 5.2.2)
    ("Status: 550\n", "5.0.0", "reply_code", "550", "500"),
    ("Status: 552 mailbox full\n", "5.2.2", "reply_code", "552", "522"),
    # the enhanced code written after the reply code is the status
    ("Status: 550 5.1.1 user unknown\n", "5.1.1", "status_field", "550", "511"),
    ("Status: 5.1.1 (user unknown)\n", "5.1.1", "status_field", None, "511"),
    # a reply code in Status, a more specific code in the diagnostic
    ("Status: 550\nDiagnostic-Code: smtp; 550 5.1.1 no such user\n", "5.1.1",
     "diagnostic_text", "550", "511"),
])
def test_reply_code_in_status_field(fields, status, source, reply, code):
    v = dsnparse.parse(dsn(_H + fields)).verdicts[0]
    assert (v.status, v.status_source, v.reply_code, v.code) == (status, source, reply, code)


# --- codes carried in extension fields (RFC 3464 §2.4) ---

def test_extension_field_carries_the_diagnostic():
    v = dsnparse.parse(dsn(_H + "Status: 5.0.0\nX-Supplementary-Info: <mx.far.example #5.1.1 "
                                "smtp;550 5.1.1 no mailbox here>\n")).verdicts[0]
    assert (v.status, v.reply_code, v.code, v.reason) == ("5.1.1", "550", "511", "user_unknown")
    assert v.diagnostic_code == "<mx.far.example #5.1.1 smtp;550 5.1.1 no mailbox here>"


def test_extension_field_carries_the_status():
    v = dsnparse.parse(dsn(_H + "X-Original-Status: 5.2.2\n")).verdicts[0]
    assert (v.status, v.code, v.bounce_type) == ("5.2.2", "522", "soft")
    assert v.diagnostic_code is None


def test_extension_field_with_a_reply_code_only():
    v = dsnparse.parse(dsn(_H + "X-Relay-Response: smtp; 552 mailbox over quota\n")).verdicts[0]
    assert (v.status, v.reply_code, v.code) == ("5.2.2", "552", "522")


def test_extension_fields_do_not_override_a_specific_status_or_coded_diagnostic():
    v = dsnparse.parse(dsn(_H + "Status: 5.7.1\nX-Scan-Diagnostic: 550 5.1.1 other\n")).verdicts[0]
    assert v.status == "5.7.1"
    v = dsnparse.parse(dsn(_H + "Status: 5.0.0\nDiagnostic-Code: smtp; 550 5.2.1 disabled\n"
                                "X-Scan-Diagnostic: 550 5.1.1 other\n")).verdicts[0]
    assert v.status == "5.2.1"


def test_extension_fields_naming_people_are_not_codes():
    v = dsnparse.parse(dsn(_H + "X-Display-Name: 550 Team\nX-Actual-Recipient: rfc822; "
                                "550@far.example\n")).verdicts[0]
    assert (v.status, v.code) == (None, "911")


# --- the value of a field written on the following line ---

@pytest.mark.parametrize("fields,status,diag", [
    # not indented: the value of "Diagnostic-Code: smtp;" on the next line
    ("Status: 5.0.0\nDiagnostic-Code: smtp;\n550 5.1.1 user unknown\n", "5.1.1",
     "550 5.1.1 user unknown"),
    # "Status:" with its code on an indented line
    ("Status:\n   5.2.2\nDiagnostic-Code: smtp; mailbox is full\n", "5.2.2", "mailbox is full"),
    # an indented field line under an empty Diagnostic-Code is a field, not the diagnostic
    ("Diagnostic-Code: smtp;\n    Remote-MTA: dns; mx.far.example\nStatus: 4.4.7\n", "4.4.7", None),
])
def test_value_on_the_following_line(fields, status, diag):
    v = dsnparse.parse(dsn(_H + fields)).verdicts[0]
    assert (v.status, v.diagnostic_code) == (status, diag)


def test_value_after_a_blank_line_is_not_taken():
    ds = rfc3464.parse_fields(_H + "Diagnostic-Code: smtp;\n\nsome later paragraph\n")
    assert ds.recipients[0]["diagnostic-code"] == "smtp;"


def test_inline_block_with_values_on_following_lines():
    txt = ("From: MAILER-DAEMON@mx.example\nSubject: Returned mail\n\nCould not deliver.\n\n"
           "   Reporting-MTA: dns; mx.example\n\n   Final-Recipient: rfc822; bob@far.example\n"
           "   Action: failed\n   Status:\n      5.1.1\n   Diagnostic-Code:\n"
           "      smtp; 550 5.1.1 user unknown\n")
    r = dsnparse.parse(txt.encode())
    v = r.verdicts[0]
    assert (r.format, v.status, v.code, v.diagnostic_code) == (
        "rfc3464-text", "5.1.1", "511", "550 5.1.1 user unknown")


# --- Exchange's diagnostic lines in their relay forms ---

@pytest.mark.parametrize("diag,status,reply,code,btype,reason", [
    ("Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'",
     "5.1.1", "550", "511", "hard", "user_unknown"),
    ("#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##",
     "5.1.1", "550", "511", "hard", "user_unknown"),
    # Status 5.0.0 keeps its class, the relayed text names the condition
    ("#< #4.4.7 smtp; 400 4.4.7 Message delayed> #SMTP#", "5.4.7", "400", "547", "hard", "expired"),
    ("Remote Server returned '< #5.0.0 smtp; 5.4.7 Delivery expired (message too old)>'",
     "5.4.7", None, "547", "hard", "expired"),
    ("Remote Server returned '550 4.4.7 QUEUE.Expired; message expired'",
     "5.4.7", "550", "547", "hard", "expired"),
])
def test_exchange_relay_forms(diag, status, reply, code, btype, reason):
    v = dsnparse.parse(dsn(_H + f"Status: 5.0.0\nDiagnostic-Code: smtp;{diag}\n")).verdicts[0]
    assert (v.status, v.reply_code, v.code, v.bounce_type, v.reason) == (
        status, reply, code, btype, reason)


def test_exchange_expired_without_status_stays_transient():
    v = dsnparse.parse(dsn(_H + "Diagnostic-Code: smtp;#< #4.4.7 smtp; 400 4.4.7 Message "
                                "delayed> #SMTP#\n")).verdicts[0]
    assert (v.status, v.code, v.bounce_type, v.reason) == ("4.4.7", "447", "soft", "expired")


def test_generic_status_of_the_other_class_keeps_its_class():
    assert decide_status("5.0.0", "4.4.7") == ("5.4.7", "diagnostic_text")
    assert decide_status("4.0.0", "5.2.2") == ("4.2.2", "diagnostic_text")
    assert decide_status("5.1.0", "4.4.7") == ("5.1.0", "status_field")  # not X.0.0
    assert decide_status("5.0.0", "4.0.0") == ("5.0.0", "status_field")


def test_generic_code_yields_to_the_relayed_one_only_nearby_and_of_its_class():
    assert find_status("< #5.0.0 smtp; 5.4.7 expired>") == "5.4.7"
    assert find_status("< #5.0.0 smtp; 4.4.7 delayed>") == "5.0.0"
    assert find_status("5.0.0 " + "x" * 300 + " 5.1.1") == "5.0.0"
    assert find_status("#5.1.0 then 5.1.1") == "5.1.0"  # only X.0.0 is generic here


# --- a failure never carries the reason "delivered" ---

@pytest.mark.parametrize("status", ["5.1.5", "4.1.5", "5.3.6", "4.3.6"])
@pytest.mark.parametrize("action", ["failed", "delayed"])
def test_failure_never_carries_delivered(status, action):
    v = dsnparse.parse(dsn(_H.replace("Action: failed", f"Action: {action}")
                           + f"Status: {status}\n")).verdicts[0]
    assert v.status == status and v.action == action
    # "failed" with a transient status and no stated cause: the MTA gave up (RFC 3464
    # §2.3.3), the engine's "expired"; otherwise no cause is known
    assert v.reason == ("expired" if action == "failed" and status[0] == "4" else "undefined")


# --- Diagnostic-Code in a legacy charset: decode_octets and the delivery-status part ---

_LEGACY = [
    ("cp932", "メールボックスがいっぱいです"),
    ("euc_jp", "このアドレスは存在しません"),
    ("gb2312", "邮箱已满，无法接收邮件"),
    ("gbk", "收件人地址不存在"),
    ("big5", "郵箱已滿，無法接收郵件"),
    ("koi8_r", "Почтовый ящик переполнен"),
    ("cp1251", "Почтовый ящик переполнен"),
    ("euc_kr", "사서함이 가득 찼습니다"),
    ("iso8859_1", "Boîte aux lettres pleine, dépassement"),
    ("cp1252", "Postfach voll: Empfänger unbekannt"),
    ("iso8859_2", "Skrzynka pocztowa jest pełna"),
]


def _ds_octets(diag: bytes, ds_params: bytes = b"", text_charset: bytes = b"us-ascii") -> bytes:
    return (b"From: MAILER-DAEMON@mx.example\nSubject: failure\nMIME-Version: 1.0\n"
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=XX\n\n"
            b"--XX\nContent-Type: text/plain; charset=" + text_charset + b"\n\nfailed\n\n"
            b"--XX\nContent-Type: message/delivery-status" + ds_params + b"\n\n"
            b"Reporting-MTA: dns; mx.example\n\nFinal-Recipient: rfc822; a@far.example\n"
            b"Action: failed\nStatus: 5.2.2\nDiagnostic-Code: smtp; 552 " + diag + b"\n\n--XX--\n")


@pytest.mark.parametrize("charset,text", _LEGACY, ids=[c for c, _ in _LEGACY])
def test_decode_octets_detects_undeclared_legacy_charsets(charset, text):
    assert rfc3464.decode_octets(("552 " + text).encode(charset)) == "552 " + text
    # and in a delivery-status part that declares nothing
    v = dsnparse.parse(_ds_octets(text.encode(charset))).verdicts[0]
    assert v.diagnostic_code == "552 " + text


def test_decode_octets_order():
    data = "Boîte pleine".encode("iso8859_1")
    # the part's declared charset first, even where another would also decode
    assert rfc3464.decode_octets(data, ["iso8859_5"]) == data.decode("iso8859_5")
    # UTF-8 (strict) before the charsets declared elsewhere in the message
    assert rfc3464.decode_octets("Boîte".encode(), [], ["iso8859_1"]) == "Boîte"
    assert rfc3464.decode_octets(data, [], ["iso8859_1"]) == "Boîte pleine"
    # an unknown or hostile charset name is skipped, never raised
    assert rfc3464.decode_octets(data, ["x-no-such\x00"], ["bogus"]) == "Boîte pleine"
    # ISO-2022-JP is recognised by its escape sequences (RFC 1468)
    jis = "宛先不明".encode("iso2022_jp")
    assert jis.isascii() and rfc3464.decode_octets(jis) == "宛先不明"
    assert rfc3464.decode_octets(b"plain ascii") == "plain ascii"


def test_declared_charset_of_the_part_and_of_the_message():
    text = "Почтовый ящик переполнен"
    # on the part: KOI8-R octets that windows-1251 would also decode without error
    v = dsnparse.parse(_ds_octets(text.encode("koi8_r"), b"; charset=koi8-r")).verdicts[0]
    assert v.diagnostic_code == "552 " + text
    # on the message's text part only
    v = dsnparse.parse(_ds_octets(text.encode("cp1251"), b"", b"windows-1251")).verdicts[0]
    assert v.diagnostic_code == "552 " + text


def test_mixed_iso2022jp_and_8bit_lines_in_one_part():
    data = (b"Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@x.example\nAction: failed\n"
            b"Diagnostic-Code: smtp; 550 " + "存在しません".encode("cp932") + b"\n\n"
            b"Final-Recipient: rfc822; b@x.example\nAction: failed\n"
            b"Diagnostic-Code: smtp; 552 " + "容量超過".encode("iso2022_jp") + b"\n")
    text = rfc3464.decode_octets(data)
    assert "550 存在しません" in text and "552 容量超過" in text


def test_encoded_words_in_a_diagnostic_are_decoded():
    import base64
    word = base64.b64encode("Postfach voll".encode("utf-16-be")).decode()
    v = dsnparse.parse(dsn(_H + f"Status: 5.2.2\nDiagnostic-Code: smtp; 552 =?UTF-16BE?B?{word}?=\n")
                       ).verdicts[0]
    assert v.diagnostic_code == "552 Postfach voll"


def test_base64_delivery_status_part_in_a_legacy_charset():
    import base64
    body = ("Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@x.example\nAction: failed\n"
            "Status: 5.1.1\nDiagnostic-Code: smtp; 550 收件人地址不存在\n").encode("gbk")
    msg = (b"From: MAILER-DAEMON@mx.example\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/report; report-type=delivery-status; boundary=XX\n\n"
           b"--XX\nContent-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n"
           + base64.encodebytes(body) + b"\n--XX--\n")
    v = dsnparse.parse(msg).verdicts[0]
    assert (v.final_recipient, v.diagnostic_code) == ("a@x.example", "550 收件人地址不存在")


def test_escape_sequences_on_8bit_lines_do_not_loop():
    # an ESC $ B on a line that also holds 8-bit octets is not ISO-2022-JP (7-bit only)
    data = b"a \x1b$B\xe9\xff x\n\x1b$B$3\x1b(B\nplain"
    text = rfc3464.decode_octets(data)
    assert text.split("\n")[1:] == ["こ", "plain"]


def test_report_part_nested_in_a_top_level_report_is_in_position():
    from dsnparse.load import load
    raw = ("From: ann@corp.example\nMIME-Version: 1.0\n"
           "Content-Type: multipart/report; report-type=delivery-status; boundary=XX\n\n"
           "--XX\nContent-Type: text/plain\n\nfailed\n\n"
           "--XX\nContent-Type: multipart/mixed; boundary=YY\n\n"
           "--YY\nContent-Type: message/delivery-status\n\n" + _DS_ONE + "\n--YY--\n\n--XX--\n")
    msg = load(raw.encode())
    assert rfc3464.in_report_position(msg, rfc3464.read(rfc3464.scan(msg)))
    assert dsnparse.parse(raw.encode()).verdicts[0].code == "511"
    # the same report inside a person's multipart/mixed is a forward
    fwd = raw.replace("multipart/report; report-type=delivery-status; boundary=XX",
                      "multipart/mixed; boundary=XX")
    assert dsnparse.parse(fwd.encode()).kind == "not_bounce"


def test_explain_names_the_structure_evidence():
    from dsnparse.engine import parse as engine_parse
    trace: list = []
    engine_parse(mixed_with_ds("From: ann@corp.example\n"), trace=trace)
    assert any("a forwarded report, not a bounce" in t for t in trace)
    trace = []
    engine_parse(mixed_with_ds("From: ann@corp.example\nReturn-Path: <>\n"), trace=trace)
    assert any("comes from a mail system (null Return-Path)" in t for t in trace)


# --- a recipient's diagnostic found after its address in the report text ---

def test_diagnostic_near_reads_the_lines_after_the_address():
    from dsnparse.engine import diagnostic_near
    text = ("Details:\n\nTo: a@x.example\nSubject: hi\n\n"          # a header line: skipped
            "a@x.example\n  Remote Server returned '550 5.1.1 not found'\n\n"
            "b@x.example: 552 5.2.2 mailbox full\n\n"
            "c@x.example\n  no code here\n\n"
            "xa@x.example\n  550 5.7.1 other\n")
    assert diagnostic_near(text, "a@x.example") == "Remote Server returned '550 5.1.1 not found'"
    assert diagnostic_near(text, "B@X.example") == "552 5.2.2 mailbox full"
    assert diagnostic_near(text, "c@x.example") is None   # no code: nothing invented
    assert diagnostic_near(text, "d@x.example") is None
    # the block ends at a blank line: the next recipient's code is not taken
    assert diagnostic_near("c@x.example\n\n550 5.1.1 gone\n", "c@x.example") is None


def test_diagnostic_near_only_for_recipients_without_one():
    r = dsnparse.parse(dsn(
        "Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@x.example\nAction: failed\n"
        "Diagnostic-Code: smtp; 550 5.2.1 disabled\n\n"
        "Final-Recipient: rfc822; b@x.example\nAction: failed\n",
        ).replace(b"failed\n\n--XX", b"a@x.example\n 550 5.1.1 x\n\nb@x.example\n "
                  b"#< #4.4.7 smtp; 400 4.4.7 Message delayed> #SMTP#\n\n--XX", 1))
    assert [(v.final_recipient, v.status) for v in r.verdicts] == [
        ("a@x.example", "5.2.1"), ("b@x.example", "4.4.7")]


def test_diagnostic_near_with_a_text_whose_lower_case_is_longer():
    from dsnparse.engine import diagnostic_near
    text = "İstanbul relay\nbob@x.example\n 550 5.1.1 unknown\n"
    assert diagnostic_near(text, "bob@x.example") == "550 5.1.1 unknown"


def test_a_later_parts_failure_replaces_an_earlier_delay_of_the_same_recipient():
    two = (
        "From: MAILER-DAEMON@mx.example\nMIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=XX\n\n"
        "--XX\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; a.example\n\n"
        "Final-Recipient: rfc822; one@x.example\nAction: delayed\nStatus: 4.4.1\n\n"
        "Final-Recipient: rfc822; two@x.example\nAction: failed\nStatus: 5.1.1\n\n"
        "--XX\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; a.example\n\n"
        "Final-Recipient: rfc822; one@x.example\nAction: failed\nStatus: 5.4.7\n\n"
        "Final-Recipient: rfc822; two@x.example\nAction: delayed\nStatus: 4.4.1\n\n"
        "--XX--\n").encode()
    r = dsnparse.parse(two)
    assert [(v.final_recipient, v.action, v.status) for v in r.verdicts] == [
        ("one@x.example", "failed", "5.4.7"), ("two@x.example", "failed", "5.1.1")]
