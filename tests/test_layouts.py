"""Generic recipient and code extraction from free-text layouts (issue 12, item 2): the
layouts of rules/generic/free-text-layouts.yaml, smtp-transcript.yaml and unknown-mta.yaml
on messages written for these tests (no vendor pack recognises them), what they must never
take (the bounce's own From/To, mail-system mailboxes, the returned original's headers),
and that their patterns stay linear on hostile input."""
from __future__ import annotations

import logging
import time

import pytest

import dsnparse
from dsnparse import rulepacks, rules
from dsnparse.options import Options


# the generic layer alone: every vendor pack left out (by the corpus families they were
# written from), as `dsnparse eval --leave-out` does
GENERIC = Options(leave_out=frozenset(f for p in rules.load_packs() for f in p.written_from))


def _parse(data: bytes, options: Options = GENERIC):
    return dsnparse.parse(data, options)


def _bounce(body: str, *, sender="MAILER-DAEMON@mx.example.net", to="sender@example.org",
            subject="Undeliverable: hello", extra="") -> bytes:
    return (f"From: {sender}\nTo: {to}\nSubject: {subject}\n{extra}"
            "Date: Mon, 2 Mar 2026 10:00:00 +0000\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=us-ascii\n\n" + body).encode()


def _rows(report):
    return [(v.final_recipient, v.status, v.reply_code, v.rule.split("+")[0]) for v in report.verdicts]


# Each layout: body, then (recipient, status, reply code, deciding recipient rule) per verdict.
# Statuses and reply codes are the ones the message states (RFC 3463 / RFC 5321).
LAYOUTS = {
    "failure sentence, reply in the next paragraph": (
        "Delivery agent at mx.example.net.\n\n"
        "An error occurred while delivering your mail to <ana@example.com>.\n\n"
        "mx.example.com [192.0.2.8] did not like our final DATA:\n"
        "554 5.7.1 Message refused by local policy\n\n"
        "Message headers follow.\n\nTo: <ana@example.com>\nFrom: <sender@example.org>\n",
        [("ana@example.com", "5.7.1", "554", "generic/free-text-layouts#failure-sentence")]),
    "address colon reply, two recipients": (
        "Your message could not be delivered to the following recipients:\n\n"
        "ana@example.com: 550 5.1.1 No such user\n"
        "bo@example.com: 452 4.2.2 Over quota, try later\n"
        "  (second attempt)\n\n"
        "Below is a copy of the original message:\n\n"
        "To: ana@example.com, bo@example.com\nSubject: hi\n",
        [("ana@example.com", "5.1.1", "550", "generic/free-text-layouts#address-colon"),
         ("bo@example.com", "4.2.2", "452", "generic/free-text-layouts#address-colon")]),
    "quoted address colon, reply below": (
        "A message that you sent could not be delivered to one or more of\n"
        "its recipients. The following address failed:\n\n"
        '"cy@example.com":\nSMTP error from remote server after RCPT command:\n'
        "host: mx.example.com\n550 5.2.1 mailbox disabled\n\n",
        None),  # unknown-mta's reply-names-address or this pack: checked below by value
    "address on date, indented reasons": (
        "Your message did not reach some or all of the intended recipients.\n\n"
        "The following recipients could not be reached:\n\n"
        "      dee@example.com on 3/2/2026 10:00 AM\n"
        "            The e-mail account does not exist at the organization\n"
        "            #550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n",
        [("dee@example.com", "5.1.1", "550", "generic/free-text-layouts#address-on-date")]),
    "address then failure words and codes": (
        "This message was created automatically by mail delivery software.\n"
        "A message that you sent could not be delivered to one or more of its recipients.\n\n"
        "eve@example.com Rejected, ERROR_CODE :552, ERROR_CODE :5.3.4 Message too big\n\n",
        [("eve@example.com", "5.3.4", "552", "generic/free-text-layouts#address-then-failure")]),
    "key/value record with a response code": (
        "----- The following addresses had permanent errors -----\n"
        "[Status: Error, Address: <fay@example.com>, ResponseCode 550, , mailbox unavailable.]\n\n",
        [("fay@example.com", None, "550", "generic/free-text-layouts#address-field-with-code")]),
    "failure phrase then address": (
        "Mailbox size limit exceeded: gus@example.com\n\n\nOriginal message follows.\n\n"
        "To: gus@example.com\nSubject: hi\n",
        [("gus@example.com", None, None, "generic/free-text-layouts#failure-then-address")]),
    "dashed failure section, reason above the address": (
        "------- Delivery Errors -------\n\nRecipient is not listed in the domain directory\n"
        "hal@example.com\n\n------- Original Message -------\nTo: hal@example.com\n",
        None),  # unknown-mta's address line or this pack's section: checked below by value
    "envelope restated, reply above": (
        "Error: Invalid user address\n\nError message below:\n"
        "550 - Requested action not taken: no such user here\n\nMessage details:\n"
        "  Subject: hello\n  MAIL FROM: sender@example.org\n  RCPT TO: ida@example.com\n",
        [("ida@example.com", None, "550", "generic/unknown-mta#recipient-field")]),
    "sendmail per-recipient lines": (
        "   ----- Transcript of session follows -----\n"
        "554 <jo@example.com>... 550 Host unknown (Authoritative answer from name server)\n"
        "550 5.1.1 <kim@example.com>... User unknown\n\n"
        "   ----- Unsent message follows -----\nTo: jo@example.com\n",
        [("jo@example.com", None, "554", "generic/smtp-transcript#sendmail-line"),
         ("kim@example.com", "5.1.1", "550", "generic/smtp-transcript#sendmail-line")]),
    "recipient accepted, message refused after DATA": (
        "Transcript of session follows.\n\n Out: 220 mx.example.net ESMTP\n"
        " In:  MAIL FROM:<sender@example.org>\n Out: 250 2.1.0 Ok\n"
        " In:  RCPT TO:<lou@example.com>\n Out: 250 2.1.5 Ok\n In:  DATA\n"
        " Out: 354 End data with <CR><LF>.<CR><LF>\n Out: 451 4.3.0 Error: queue file write error\n"
        " In:  QUIT\n",
        [("lou@example.com", "4.3.0", "451", "generic/smtp-transcript#rcpt-then-data")]),
    "address, blanks, colon and reason (a list)": (
        "The original message was not delivered to the following address(es):\n\n"
        "    pat@example.com   : unknown user\n    quin@example.com  : 552 mailbox full\n",
        [("pat@example.com", None, None, "generic/free-text-layouts#address-colon"),
         ("quin@example.com", None, "552", "generic/free-text-layouts#address-colon")]),
    "indented address, then the remote server's error below it": (
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        "  rae@example.com\n    SMTP error from remote mail server after RCPT TO:<rae@example.com>:\n"
        "    host mx.example.com [192.0.2.1]: 550 5.1.1 No such user\n\n"
        "  sol@example.com\n    SMTP error from remote mail server after end of data:\n"
        "    host mx.example.com [192.0.2.1]: 552 5.3.4 Message size exceeds fixed limit\n\n"
        "------ This is a copy of the message, including all the headers. ------\n"
        "To: rae@example.com, sol@example.com\n",
        [("rae@example.com", "5.1.1", "550", "generic/smtp-transcript#rcpt"),
         ("sol@example.com", "5.3.4", "552", "generic/smtp-transcript#address-then-smtp-error")]),
    "address lines, each with its reason below": (
        "----- The following addresses had permanent fatal errors -----\n"
        "tia@example.com\n    (reason: 550 5.1.1 Mailbox unavailable)\n"
        "uma@example.com\n    (reason: 552 5.2.2 Mailbox full)\n\n",
        [("tia@example.com", "5.1.1", "550", "generic/unknown-mta#address-line"),
         ("uma@example.com", "5.2.2", "552", "generic/unknown-mta#address-line")]),
    "failure sentence with the reason on its line": (
        "Hello,\n\nYour message to val@example.com could not be delivered because the "
        "recipient's mailbox is full.\n\nThis is an automated message.\n",
        [("val@example.com", None, None, "generic/free-text-layouts#failure-sentence-inline")]),
    "labelled entries, each with its reason and code lines below": (
        "Your message cannot be delivered to the following recipients:\n\n"
        "  Recipient address: ema@example.com\n  Reason: Remote SMTP server has rejected address\n"
        "  Diagnostic code: smtp;550 5.1.1 User unknown\n  Remote system: dns;mx.example.com\n\n"
        "  Recipient address: fin@example.com\n  Reason: Mailbox quota exceeded\n"
        "  Diagnostic code: smtp;552 5.2.2 Over quota\n",
        [("ema@example.com", "5.1.1", "550", "generic/unknown-mta#labelled"),
         ("fin@example.com", "5.2.2", "552", "generic/unknown-mta#labelled")]),
    "multi-line reply in a transcript": (
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        "  ivy@example.com\n    SMTP error from remote mail server after RCPT TO:<ivy@example.com>:\n"
        "    host mx.example.com [192.0.2.1]: 550-Your message was rejected by this system.\n"
        "    550-Please contact your provider.\n    550 5.7.1 Sender host has no PTR record\n",
        [("ivy@example.com", "5.7.1", "550", "generic/smtp-transcript#rcpt")]),
    "angle-bracketed address expanded from an alias": (
        "This is the mail system at host mail.example.net.\n\n"
        "<ugo@mail.example.net> (expanded from <ugo>): user unknown\n",
        [("ugo@mail.example.net", None, None, "generic/unknown-mta#angle-colon")]),
    "reason sentence with the address in brackets, codes on the lines below": (
        "This Message was undeliverable due to the following reason:\n\n"
        "The following message to <oli@example.com> was undeliverable.\n"
        "The reason for the problem:\n5.1.0 - Unknown address error 550-'oli@example.com... No such user'\n",
        [("oli@example.com", "5.1.0", "550", "generic/unknown-mta#named-in-sentence")]),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout(name):
    body, want = LAYOUTS[name]
    r = _parse(_bounce(body))
    assert r.kind == "bounce", name
    if want is not None:
        got = _rows(r)
        for (addr, status, reply, rule), (g_addr, g_status, g_reply, g_rule) in zip(want, got):
            assert (g_addr, g_reply, g_rule) == (addr, reply, rule), name
            if status is not None:
                assert g_status == status, name
        assert len(got) == len(want), got


def test_quoted_address_and_its_reply_below():
    r = _parse(_bounce(LAYOUTS["quoted address colon, reply below"][0]))
    [v] = r.verdicts
    assert (v.final_recipient, v.status, v.reply_code) == ("cy@example.com", "5.2.1", "550")


def test_reason_above_the_address_in_a_failure_section():
    r = _parse(_bounce(LAYOUTS["dashed failure section, reason above the address"][0]))
    [v] = r.verdicts
    assert v.final_recipient == "hal@example.com"
    assert v.status == "5.1.1" and v.reason == "user_unknown"  # "not listed in the … directory"


def test_failure_section_rule_reads_the_reason_line_above():
    pack = next(p for p in rules.load_packs() if p.id == "generic/free-text-layouts")
    text = ("------- Failure Reasons -------\n\nUser not listed in directory\n"
            "hal@example.com\n\n------- Returned Message -------\nTo: x@example.com\n")
    found = rules.extract(pack, rules.region(pack, text, 1.0), lambda name: None, 1.0)
    assert found == [("failure-section", {"recipient": "hal@example.com", "action": "failed",
                                          "diagnostic": "User not listed in directory"})]


def test_a_single_recipient_line_without_a_code_takes_the_reports_codes():
    # the address is named in a sentence; its codes are on the lines below: not a 911
    body = ("Your message to <mo@example.com> could not be delivered.\n\n"
            "Remote host said: 550 5.1.1 mailbox unavailable\n")
    [v] = _parse(_bounce(body)).verdicts
    assert (v.final_recipient, v.status, v.reply_code, v.code) == ("mo@example.com", "5.1.1", "550", "511")


# ------------------------------------------------------------------ what is never taken

def test_never_the_bounces_own_to_or_from():
    body = ("Your message could not be delivered to the following recipients:\n\n"
            "sender@example.org: 550 5.1.1 No such user\n"
            "MAILER-DAEMON@mx.example.net: 550 5.1.1 No such user\n\n")
    r = _parse(_bounce(body))
    assert [v.final_recipient for v in r.verdicts] == []


def test_never_a_system_mailbox():
    body = ("Your message could not be delivered to the following recipients:\n\n"
            "postmaster@example.com: 550 5.1.1 No such user\n"
            "nat@example.com: 550 5.1.1 No such user\n\n")
    assert [v.final_recipient for v in _parse(_bounce(body)).verdicts] == ["nat@example.com"]


def test_a_system_mailbox_the_original_was_sent_to_is_the_recipient():
    # a message sent to postmaster@ of another domain (RFC 5321 §4.5.1) bounced: the
    # returned original's To names it, so it is the failed recipient; the reporting
    # system's own postmaster, named for help, still is not
    def bounce(rcpt):
        body = (f"Your message to <{rcpt}> could not be delivered.\n"
                "DNS lookup failure: host shop.remote.example not found\n\n"
                "For help, please write to postmaster@relay.sender.example.\n\n"
                "------ This is a copy of the message's headers. ------\n\n"
                f"From: <webmaster@sender.example>\nTo: <{rcpt}>\nSubject: Abuse report\n")
        return _parse(_bounce(body, to="webmaster@sender.example"))
    for rcpt in ("postmaster@shop.remote.example", "sales@shop.remote.example"):
        assert [(v.final_recipient, v.status, v.reason) for v in bounce(rcpt).verdicts] == \
            [(rcpt, "5.1.2", "host_unknown")]
    # named in the text but not what the original was sent to: still skipped
    body = ("Your message could not be delivered to the following recipients:\n\n"
            "postmaster@example.com: 550 5.1.1 No such user\n\n"
            "------ This is a copy of the message's headers. ------\n\n"
            "From: <sender@example.org>\nTo: <nat@example.com>\nSubject: hi\n")
    assert "postmaster@example.com" not in [v.final_recipient for v in _parse(_bounce(body)).verdicts]


def test_never_a_help_address_named_in_an_instruction():
    body = ("Your message to <ann@example.com> could not be delivered: 550 5.1.1 user unknown\n\n"
            "If you have questions, please write to <helpdesk@example.net>.\n")
    assert [v.final_recipient for v in _parse(_bounce(body)).verdicts] == ["ann@example.com"]


def test_never_the_returned_originals_headers():
    # the report names nobody; the returned original holds address-colon and Received lines
    body = ("An error has occurred while attempting to deliver a message for\n"
            "the following list of recipients:\n\n"
            "Below is a copy of the original message:\n\n"
            "Received: from localhost\n\tby mx.example.net with ESMTP id 1\n"
            "\tfor <olga@example.com>;\n\tMon, 2 Mar 2026 10:00:00 +0000\n"
            "Reply-To: pia@example.com\nTo: olga@example.com, quinn@example.com\n"
            "quinn@example.com: 550 5.1.1 quoted in the body of the original\n")
    r = _parse(_bounce(body))
    assert [v.final_recipient for v in r.verdicts] == []


def test_a_person_forwarding_a_bounce_is_not_a_bounce():
    # a human's message (no system sender, no bounce subject, a real return path)
    body = ("Hi, I got this when I wrote to Rita, any idea?\n\n"
            "> There was an error delivering your mail to <rita@example.com>.\n"
            "> rita@example.com: 550 5.1.1 No such user\n")
    r = _parse(_bounce(body, sender="Sam <sam@example.org>", subject="Fwd: hello",
                               extra="Return-Path: <sam@example.org>\n"))
    assert r.kind == "not_bounce"


# ------------------------------------------------------------------ continuation "block"

def test_block_continuation_stops_at_a_blank_line_or_the_next_address():
    text = "a@x.org: 550 no\n  more about a\nb@x.org: 550 no\n\nunrelated\n"
    assert rules._continue(text, text.index("\n"), "block") == "more about a"
    text = "a@x.org: 550 no\n\nnext paragraph\n"
    assert rules._continue(text, text.index("\n"), "block") == ""
    assert rules._continue(text, text.index("\n"), "paragraph") == "next paragraph"


def test_block_is_a_valid_continuation_and_others_are_not(tmp_path):
    from dsnparse.errors import RuleError

    for mode, ok in (("block", True), ("lines", False)):
        d = tmp_path / mode
        d.mkdir()
        (d / "p.yaml").write_text(
            "detect:\n  any:\n    - body: 'x'\nrecipients:\n  - id: r\n"
            f"    pattern: '(?P<recipient>\\S+@\\S+)'\n    continuation: {mode}\n", encoding="utf-8")
        if ok:
            assert rules.load_pack(d / "p.yaml").recipients[0].continuation == "block"
        else:
            with pytest.raises(RuleError, match="continuation"):
                rules.load_pack(d / "p.yaml")


# ------------------------------------------------------------------ linear on hostile input

HOSTILE = ["a@b.cc: " * 3000, '"a@b.cc": ' * 2000, "a@b.cc on 1 " * 2000, "a@b.cc error " * 2000,
           "ERROR_CODE :550 " * 2000, "Address: <a@b.cc>, " * 1500, "-------- failure " * 1500,
           "exceeds quota " * 2000 + ": a@b.cc", "error delivering to " * 1500 + "<a@b.cc>",
           "RCPT TO:<a@b.cc> " * 2000, "RCPT TO:<a@b.cc>\n" * 2000, "550 <a@b.cc>... x\n" * 2000,
           "error " * 4000 + "to a@b.cc", "fail\n" * 3000 + "a@b.cc", "a@b.cc\n" * 3000,
           "a@b.cc   : " * 2000, "Your message to a@b.cc could not be delivered " * 300,
           "Recipient address: a@b.cc\n  Reason: x\n" * 1500, "<a@b.cc> (expanded from <" * 1000,
           "[550] " * 3000, "has been delayed\n" + "a@b.cc\n" * 3000, "550 karen... x\n" * 2000,
           "RCPT TO:<a@b.cc>\n550-x\n" * 1000, "550-" * 5000]


@pytest.mark.parametrize("h", HOSTILE, ids=lambda h: repr(h[:14]))
def test_layouts_stay_linear_on_hostile_input(h, caplog, monkeypatch):
    monkeypatch.setattr(rulepacks.pattern, "_REPORTED", set())
    body = ("There was an error delivering your mail to the following recipients:\n\n"
            + h + "\n" + h + "\n\n550 x\n")
    with caplog.at_level(logging.WARNING):
        t = time.perf_counter()
        r = _parse(_bounce(body, extra="Return-Path: <>\n"), GENERIC.replace(pattern_timeout=2.0))
        elapsed = time.perf_counter() - t
    assert r.kind
    assert not [m for m in caplog.messages if "pattern timed out" in m]
    assert elapsed < 10, elapsed  # generous: a shared, loaded machine; quadratic runs take minutes


def test_envelope_restated_by_a_post_master_notice():
    # no bounce subject; "post_master" is a mail-system sender of rules/lang/en.yaml, so
    # unknown-mta (tried first) reads the restated envelope field as a recipient field
    r = _parse(_bounce(LAYOUTS["envelope restated, reply above"][0],
                       sender="post_master@mms.example.net", subject="Re: hello"))
    assert _rows(r) == [("ida@example.com", "5.1.1", "550",  # "no such user here"
                         "generic/unknown-mta#recipient-field")]


@pytest.mark.parametrize("return_path, kind", [("<>", "bounce"), ("<alerts@example.net>", "not_bounce")])
def test_the_null_reverse_path_is_sender_evidence(return_path, kind):
    # RFC 5321 §4.5.5: notifications are sent with the null reverse-path
    body = ("Your mail sent on: Mon, 2 Mar 2026 10:00:00 +0900\n"
            "     Could not be delivered to: <una@example.com>\n     As their mailbox is full.\n")
    r = _parse(_bounce(body, sender="no-reply@mail.example.net", subject="Mail",
                       extra=f"Return-Path: {return_path}\n"))
    assert r.kind == kind
    if kind == "bounce":
        [v] = r.verdicts
        assert (v.final_recipient, v.status, v.reason) == ("una@example.com", "5.2.2", "mailbox_full")


def test_an_address_is_never_cut_short_to_fit_a_sentence():
    body = "undeliverable to kay@example.jp \n\nBody of message generated response:\n550 5.7.1 no\n"
    assert [v.final_recipient for v in _parse(_bounce(body)).verdicts] == ["kay@example.jp"]


def test_a_delay_warning_lists_delayed_recipients():
    body = ("THIS IS A WARNING MESSAGE ONLY.\n\nDelivery to the following recipient has been "
            "delayed:\n\n     dan@example.com\n\nMessage will be retried for 2 more day(s)\n")
    r = _parse(_bounce(body, subject="Delivery Status Notification (Delay)"))
    assert r.kind == "delay"
    assert [(v.final_recipient, v.action) for v in r.verdicts] == [("dan@example.com", "delayed")]


def test_block_stops_where_the_rules_own_entry_starts_again():
    pack = next(p for p in rules.load_packs() if p.id == "generic/unknown-mta")
    rule = next(r for r in pack.recipients if r.id == "labelled")
    text = "Recipient: a@example.com\n  Reason: no\nRecipient: b@example.com\n"
    m = rule.pattern.search(text, 1.0)
    assert rules._continue(text, m.end(), "block", rule.pattern, 1.0) == "Reason: no"


def test_a_challenge_response_request_is_not_a_bounce():
    # held until the sender verifies, not refused: its recipient must not be suppressed
    body = ("Hello,\n\nYour message to alice@example.com has not been delivered yet.\n"
            "alice@example.com uses a challenge-response system. Please click the link below "
            "to verify that you are a person:\nhttps://verify.example.net/c/8812\n")
    for sender in ("alice@example.com", "MAILER-DAEMON@verify.example.net"):
        r = _parse(_bounce(body, sender=sender, subject="Please verify your message",
                           extra="Return-Path: <>\n"))
        assert r.kind != "bounce", sender


LOCAL = ("The original message was received at Mon, 2 Mar 2026 10:00:00 +0100\n"
         "from mx.example.org [192.0.2.9]\n\n"
         "   ----- Transcript of session follows -----\n550 5.1.1 karen... User unknown\n\n"
         "   ----- Original message follows -----\nFrom: sender@example.org\n"
         "To: {to}\nSubject: hi\n\nhello\n")


@pytest.mark.parametrize("to, want", [
    ("Karen <Karen@example.net>, leo@example.net", ["Karen@example.net"]),  # local part matched
    ("karen@example.net, karen@example.com", []),  # two candidates: no guess
])
def test_a_local_part_is_completed_from_the_returned_messages_recipients(to, want):
    r = _parse(_bounce(LOCAL.format(to=to), subject="Returned mail: see transcript for details"))
    got = [v.final_recipient for v in r.verdicts if v.rule.startswith("generic/smtp-transcript")]
    assert got == want
    if want:
        assert (r.verdicts[0].status, r.verdicts[0].reply_code) == ("5.1.1", "550")


def test_a_local_part_is_never_completed_from_a_host_name():
    body = ("This is the mail system at host mail.example.net.\n\n"
            "   ----- Transcript of session follows -----\n550 5.1.1 karen... User unknown\n")
    r = _parse(_bounce(body, subject="Returned mail: see transcript for details"))
    assert [v.final_recipient for v in r.verdicts] == []


def test_ordinary_mail_costs_the_generic_packs_no_body_search(monkeypatch):
    # their header tests (a mail system's sender, a bounce subject, the null reverse-path)
    # run first; the body searches only for a message that passes them
    searched = []
    real = rules._test

    def spy(c, header, body, timeout, folded, memo):
        if c.target == "body":
            searched.append(c.pattern.source)
        return real(c, header, body, timeout, folded, memo)

    monkeypatch.setattr(rulepacks.detection, "_test", spy)
    generic = {c.pattern.source for p in rules.load_packs() if p.id.startswith("generic/")
               for c in p.detect_all + p.detect_none if c.target == "body"}
    msg = _bounce("Hi Ann,\n\nthe invoice could not be delivered to the office on time; the courier\n"
                  "failed twice. Undeliverable parcels go back to the depot.\n\nBest, Sam\n",
                  sender="Sam <sam@example.org>", subject="Invoice", extra="Return-Path: <sam@example.org>\n")
    assert _parse(msg).kind == "not_bounce"
    assert not generic & set(searched)


@pytest.mark.parametrize("text, want", [
    ("Remote server replied: [550] mailbox unavailable", "550"),
    ("error 550: no such user", "550"),
    ("Error, ERROR_CODE :421, ERROR_CODE :, Host not reachable.", "421"),
    ("ResponseCode 452, , insufficient storage", "452"),
    ("The server said 550 5.1.1 unknown", None),  # the reply-line form: status.find_codes reads it
    ("message of (552 bytes) refused", None),     # a number, not a code
    ("size 550 KB", None),
])
def test_a_reply_code_in_brackets_or_after_a_label(text, want):
    assert rules.labelled_reply(text) == want


def test_a_bracketed_reply_code_is_the_verdicts_reply_code():
    body = ("The following message could not be delivered to these recipients:\n\n"
            "  nia@example.com (Remote server replied: [550] mailbox unavailable)\n")
    [v] = _parse(_bounce(body)).verdicts
    assert (v.final_recipient, v.reply_code, v.bounce_type) == ("nia@example.com", "550", "hard")
    assert v.code != "911"
